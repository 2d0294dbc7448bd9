//! The e-mail templates: one plain-text and one HTML template per kind of message, compiled
//! into the binary (askama). HTML escapes every value; the plain text is sent as
//! `text/plain`, where nothing is interpreted.

use askama::Template;
use canopy_tenancy::mail::{Mail, MailContent, RenderedMail};
use canopy_tenancy::ports::MailRenderer;
use chrono::{DateTime, Utc};

/// A day and time every reader can place: `8 December 2026, 06:45 UTC`.
fn when(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y, %H:%M UTC").to_string()
}

/// Renders [`Mail`] with the product's name in every message.
#[derive(Debug, Clone)]
pub struct Templates {
    product: String,
}

impl Templates {
    /// Templates signed with `product` (Canopy, or an embedder's own name).
    pub fn new(product: impl Into<String>) -> Self {
        Self {
            product: product.into(),
        }
    }
}

impl Default for Templates {
    fn default() -> Self {
        Self::new("Canopy")
    }
}

macro_rules! kind {
    ($text:ident = $txt:literal, $html:ident = $htm:literal { $($field:ident: $ty:ty),* $(,)? }) => {
        #[derive(Template)]
        #[template(path = $txt)]
        struct $text<'a> {
            product: &'a str,
            $($field: $ty,)*
        }

        #[derive(Template)]
        #[template(path = $htm)]
        struct $html<'a> {
            product: &'a str,
            subject: &'a str,
            $($field: $ty,)*
        }
    };
}

kind!(InvitationText = "invitation.txt", InvitationHtml = "invitation.html" {
    organization: &'a str, invited_by: &'a str, role: &'a str, link: &'a str,
    action: &'a str, expires: String,
});
kind!(VerifyText = "verify_email.txt", VerifyHtml = "verify_email.html" {
    name: &'a str, link: &'a str, action: &'a str, expires: String,
});
kind!(ResetText = "password_reset.txt", ResetHtml = "password_reset.html" {
    name: &'a str, link: &'a str, action: &'a str, expires: String,
});
kind!(ConfirmText = "confirm_new_email.txt", ConfirmHtml = "confirm_new_email.html" {
    name: &'a str, link: &'a str, action: &'a str, expires: String,
});
kind!(ChangeText = "email_change_requested.txt", ChangeHtml = "email_change_requested.html" {
    name: &'a str, new_email: &'a str,
});
kind!(ChangedText = "password_changed.txt", ChangedHtml = "password_changed.html" { name: &'a str, at: String });

/// Renders both templates of a kind with the same fields.
macro_rules! render {
    ($subject:expr, $product:expr, $text:ident, $html:ident { $($field:ident: $value:expr),* $(,)? }) => {{
        let subject: String = $subject;
        let text = $text { product: $product, $($field: $value,)* }.render();
        let html = $html { product: $product, subject: &subject, $($field: $value,)* }.render();
        (subject, text, html)
    }};
}

impl MailRenderer for Templates {
    fn render(&self, mail: &Mail) -> RenderedMail {
        let product = self.product.as_str();
        let (subject, text, html) = match &mail.content {
            MailContent::Invitation {
                organization,
                invited_by,
                role,
                link,
                expires_at,
                ..
            } => render!(
                format!("You're invited to join {organization} on {product}"),
                product,
                InvitationText,
                InvitationHtml {
                    organization: organization,
                    invited_by: invited_by,
                    role: role.as_str(),
                    link: link,
                    action: "View the invitation",
                    expires: when(*expires_at),
                }
            ),
            MailContent::VerifyEmail {
                name,
                link,
                expires_at,
            } => render!(
                format!("Confirm your e-mail address for {product}"),
                product,
                VerifyText,
                VerifyHtml {
                    name: name,
                    link: link,
                    action: "Confirm my address",
                    expires: when(*expires_at),
                }
            ),
            MailContent::PasswordReset {
                name,
                link,
                expires_at,
            } => render!(
                format!("Reset your {product} password"),
                product,
                ResetText,
                ResetHtml {
                    name: name,
                    link: link,
                    action: "Choose a new password",
                    expires: when(*expires_at),
                }
            ),
            MailContent::ConfirmNewEmail {
                name,
                link,
                expires_at,
            } => render!(
                format!("Confirm your new e-mail address for {product}"),
                product,
                ConfirmText,
                ConfirmHtml {
                    name: name,
                    link: link,
                    action: "Confirm the new address",
                    expires: when(*expires_at),
                }
            ),
            MailContent::EmailChangeRequested { name, new_email } => render!(
                format!("Your {product} e-mail address is changing"),
                product,
                ChangeText,
                ChangeHtml {
                    name: name,
                    new_email: new_email,
                }
            ),
            MailContent::PasswordChanged { name, at } => render!(
                format!("Your {product} password was changed"),
                product,
                ChangedText,
                ChangedHtml {
                    name: name,
                    at: when(*at),
                }
            ),
        };
        // The templates are compiled and their fields are strings: rendering cannot fail
        // short of running out of memory; say so in the message rather than lose it.
        RenderedMail {
            subject,
            text: text.unwrap_or_else(|e| format!("(the message could not be rendered: {e})")),
            html: html.unwrap_or_else(|e| format!("(the message could not be rendered: {e})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use canopy_tenancy::membership::Role;
    use canopy_tenancy::user::Email;
    use uuid::Uuid;

    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_625_900, 0).unwrap()
    }

    fn mail(content: MailContent) -> RenderedMail {
        Templates::default().render(&Mail {
            to: Email::parse("ada@example.com", "to").unwrap(),
            content,
        })
    }

    #[test]
    fn every_kind_names_the_product_and_its_link_in_both_bodies() {
        let link = "https://canopy.example.com/verify-email?token=cnp_verify_abc";
        for content in [
            MailContent::VerifyEmail {
                name: "Ada".into(),
                link: link.into(),
                expires_at: at(),
            },
            MailContent::PasswordReset {
                name: "Ada".into(),
                link: link.into(),
                expires_at: at(),
            },
            MailContent::ConfirmNewEmail {
                name: "Ada".into(),
                link: link.into(),
                expires_at: at(),
            },
            MailContent::Invitation {
                invitation_id: Uuid::nil(),
                organization: "Acme".into(),
                invited_by: "Ada".into(),
                role: Role::Admin,
                link: link.into(),
                expires_at: at(),
            },
        ] {
            let kind = content.kind();
            let r = mail(content);
            assert!(r.subject.contains("Canopy"), "{kind}: {}", r.subject);
            for body in [&r.text, &r.html] {
                assert!(body.contains(link), "{kind}: {body}");
                assert!(body.contains("Canopy"), "{kind}");
                assert!(body.contains(&when(at())), "{kind}: the expiry");
            }
            assert!(r.html.contains(&format!("href=\"{link}\"")), "{kind}");
        }
    }

    #[test]
    fn markup_in_names_is_escaped_in_html_and_left_alone_in_text() {
        let r = mail(MailContent::Invitation {
            invitation_id: Uuid::nil(),
            organization: "<img src=x onerror=alert(1)>".into(),
            invited_by: "Eve & co".into(),
            role: Role::Member,
            link: "https://c.example/invitations/1".into(),
            expires_at: at(),
        });
        assert!(!r.html.contains("<img"), "{}", r.html);
        assert!(
            r.html.contains("&#60;img src=x onerror=alert(1)&#62;"),
            "{}",
            r.html
        );
        assert!(r.html.contains("Eve &#38; co"), "{}", r.html);
        assert!(r.text.contains("<img src=x onerror=alert(1)>"));
        assert!(r.text.contains("Eve & co invited you"));
    }

    #[test]
    fn notices_carry_no_link() {
        let r = mail(MailContent::PasswordChanged {
            name: "Ada".into(),
            at: at(),
        });
        assert!(r.text.contains(&when(at())));
        assert!(!r.html.contains("href="));
        let r = mail(MailContent::EmailChangeRequested {
            name: "Ada".into(),
            new_email: "ada@new.example".into(),
        });
        assert!(r.text.contains("ada@new.example") && r.html.contains("ada@new.example"));
    }

    #[test]
    fn the_date_reads_as_a_day_and_a_time() {
        assert_eq!(when(at()), "7 December 2026, 06:45 UTC");
    }
}
