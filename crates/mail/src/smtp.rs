//! The SMTP transport: one pooled lettre client per process.
//!
//! Which failures are final: a 5xx reply to the message (an unknown mailbox, a refused
//! domain) cannot succeed later, so the relay records it and stops; everything else (no
//! connection, a timeout, a 4xx reply, TLS trouble) may pass and is retried. Authentication
//! refusals (530, 534, 535, 538) are 5xx too but say nothing about the message: the operator
//! fixes the credentials and the queue drains, so they count as temporary.

use std::time::Duration;

use async_trait::async_trait;
use canopy_tenancy::mail::{ClaimedMail, DeliveryError};
use canopy_tenancy::ports::MailTransport;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same host or a test server.
    None,
}

impl Security {
    /// The port that goes with it when none is configured.
    pub fn default_port(self) -> u16 {
        match self {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }
    }
}

/// Where and how to send.
#[derive(Clone)]
pub struct SmtpSettings {
    /// Mail server host name (also the name its certificate must carry).
    pub host: String,
    /// Port; the security mode's usual one when `None`.
    pub port: Option<u16>,
    /// Connection security.
    pub security: Security,
    /// AUTH user name, when the server wants one.
    pub username: Option<String>,
    /// AUTH password.
    pub password: Option<SecretString>,
    /// The sender, `Name <address>`.
    pub from: String,
    /// Longest a whole exchange may take (connect, TLS, AUTH, the message).
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A configuration the transport cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The sender is not a mailbox.
    #[error("smtp.from {0:?} is not an address like `Canopy <no-reply@example.com>`")]
    From(String),
    /// A password without a user name, or the other way round.
    #[error("smtp.username and smtp.password go together")]
    Credentials,
    /// lettre refused the host or TLS parameters.
    #[error("smtp.host: {0}")]
    Host(String),
}

/// Sends rendered messages to one mail server.
#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Smtp {
    /// A transport for `settings`; nothing connects until the first message.
    pub fn new(settings: &SmtpSettings) -> Result<Self, SmtpError> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|_| SmtpError::From(settings.from.clone()))?;
        let tls = |host: &str| {
            TlsParameters::new(host.to_string()).map_err(|e| SmtpError::Host(e.to_string()))
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port.unwrap_or(settings.security.default_port()))
            .timeout(Some(settings.timeout))
            .tls(match settings.security {
                Security::Starttls => Tls::Required(tls(&settings.host)?),
                Security::Tls => Tls::Wrapper(tls(&settings.host)?),
                Security::None => Tls::None,
            });
        let builder = match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_string(),
            )),
            (None, None) => builder,
            _ => return Err(SmtpError::Credentials),
        };
        Ok(Self {
            transport: builder.build(),
            from,
            timeout: settings.timeout,
        })
    }

    /// The `Message-ID` of an outbox message: its id at the sender's domain, the same on every
    /// attempt, so a receiver can recognise a repeat.
    fn message_id(&self, mail: &ClaimedMail) -> String {
        format!("<{}@{}>", mail.mail.id, self.from.email.domain())
    }
}

/// Replies that refuse the credentials, not the message.
fn is_auth_refusal(code: u16) -> bool {
    matches!(code, 530 | 534 | 535 | 538)
}

#[async_trait]
impl MailTransport for Smtp {
    async fn send(&self, mail: &ClaimedMail) -> Result<(), DeliveryError> {
        let to: Mailbox = mail.mail.to.parse().map_err(|_| {
            DeliveryError::Permanent(format!("{:?} is not a deliverable address", mail.mail.to))
        })?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.mail.rendered.subject.clone())
            .message_id(Some(self.message_id(mail)))
            .multipart(MultiPart::alternative_plain_html(
                mail.mail.rendered.text.clone(),
                mail.mail.rendered.html.clone(),
            ))
            .map_err(|e| DeliveryError::Permanent(format!("the message cannot be built: {e}")))?;
        // lettre's own timeout bounds only the connect; a server that accepts and then stalls
        // would hold the relay (and its lease) for ever.
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Err(_) => Err(DeliveryError::Transient(format!(
                "no answer from the mail server within {} s",
                self.timeout.as_secs()
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                let code = e.status().map(u16::from);
                if e.is_permanent() && !code.is_some_and(is_auth_refusal) {
                    Err(DeliveryError::Permanent(e.to_string()))
                } else {
                    if code.is_some_and(is_auth_refusal) {
                        tracing::error!(error = %e, "the mail server refused Canopy's SMTP credentials");
                    }
                    Err(DeliveryError::Transient(e.to_string()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SmtpSettings {
        SmtpSettings {
            host: "smtp.example.com".into(),
            port: None,
            security: Security::Starttls,
            username: Some("relay".into()),
            password: Some(SecretString::from("hunter22-secret")),
            from: "Canopy <no-reply@canopy.example.com>".into(),
            timeout: Duration::from_secs(10),
        }
    }

    // Building the pooled transport spawns its reaper: these run inside a runtime, as
    // `canopy serve` does.
    #[tokio::test]
    async fn a_bad_sender_or_half_credentials_are_refused_at_start() {
        let mut s = settings();
        s.from = "not an address".into();
        assert!(matches!(Smtp::new(&s), Err(SmtpError::From(_))));
        let mut s = settings();
        s.password = None;
        assert!(matches!(Smtp::new(&s), Err(SmtpError::Credentials)));
        assert!(Smtp::new(&settings()).is_ok());
    }

    #[tokio::test]
    async fn the_password_is_never_printed() {
        let s = settings();
        assert!(!format!("{s:?}").contains("hunter22"));
        assert!(!format!("{:?}", Smtp::new(&s).unwrap()).contains("hunter22"));
    }

    #[test]
    fn auth_refusals_are_not_the_message_fault() {
        assert!(is_auth_refusal(535) && is_auth_refusal(530));
        assert!(!is_auth_refusal(550) && !is_auth_refusal(554));
    }

    #[test]
    fn security_modes_have_their_usual_ports() {
        assert_eq!(Security::Starttls.default_port(), 587);
        assert_eq!(Security::Tls.default_port(), 465);
        assert_eq!(Security::None.default_port(), 25);
    }
}
