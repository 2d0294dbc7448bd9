//! Canopy e-mail adapters: [`Templates`] renders each kind of message the tenancy domain sends
//! into a subject, a plain-text and an HTML body; [`Smtp`] hands a rendered message to a mail
//! server (lettre, STARTTLS or implicit TLS over rustls, AUTH from the configuration, every
//! exchange bounded by a timeout). The relay that drains the outbox into it is the domain's
//! [`canopy_tenancy::MailRelay`].

mod smtp;
mod templates;

pub use smtp::{Security, Smtp, SmtpError, SmtpSettings};
pub use templates::Templates;
