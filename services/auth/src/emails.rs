//! The account e-mails: verify an address, reset a password. Plain text and
//! HTML; each carries a link to the web client and the token itself.

use stampede_common::mail::{Mail, html_escape};

fn hours(seconds: i64) -> String {
    match seconds {
        s if s % 3600 == 0 && s / 3600 == 1 => "1 hour".to_owned(),
        s if s % 3600 == 0 => format!("{} hours", s / 3600),
        s => format!("{} minutes", (s + 59) / 60),
    }
}

/// What differs between the account e-mails.
struct Template {
    /// Names the message (`<kind>-<token prefix>`).
    kind: &'static str,
    subject: &'static str,
    lead: &'static str,
    action: &'static str,
    /// The web client's page the link opens.
    path: &'static str,
}

const VERIFY: Template = Template {
    kind: "verify",
    subject: "Verify your e-mail address",
    lead: "Please confirm that this address is yours.",
    action: "Verify it",
    path: "/verify-email",
};

const RESET: Template = Template {
    kind: "reset",
    subject: "Reset your password",
    lead: "Someone (we hope you) asked to reset your Stampede password.",
    action: "Choose a new password",
    path: "/reset-password",
};

fn render(t: &Template, to: &str, public_url: &str, token: &str, ttl_seconds: i64) -> Mail {
    let (lead, action, valid) = (t.lead, t.action, hours(ttl_seconds));
    let link = format!("{public_url}{}?token={token}", t.path);
    let text = format!(
        "{lead}\r\n\r\n{action}: {link}\r\n\r\nOr enter this code: {token}\r\n\r\nThe link works once, for {valid}. \
         If you did not ask for it, ignore this e-mail.\r\n"
    );
    let html = format!(
        "<html><body><h1>{}</h1><p>{}</p><p><a href=\"{}\">{}</a></p><p>Or enter this code: <code>{}</code></p>\
         <p>The link works once, for {valid}. If you did not ask for it, ignore this e-mail.</p></body></html>",
        html_escape(t.subject),
        html_escape(lead),
        html_escape(&link),
        html_escape(action),
        html_escape(token),
    );
    let id = format!("{}-{}", t.kind, token.get(..16).unwrap_or(token));
    Mail { to: to.to_owned(), subject: t.subject.to_owned(), text, html, id, headers: vec![] }
}

/// "Verify your e-mail address", with the token.
pub fn verify_email(to: &str, public_url: &str, token: &str, ttl_seconds: i64) -> Mail {
    render(&VERIFY, to, public_url, token, ttl_seconds)
}

/// "Reset your password", with the token.
pub fn password_reset(to: &str, public_url: &str, token: &str, ttl_seconds: i64) -> Mail {
    render(&RESET, to, public_url, token, ttl_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_templates_carry_the_link_and_the_token_in_both_parts() {
        let m = verify_email("a@b.c", "https://t.example", "ab12", 86_400);
        assert!(m.text.contains("https://t.example/verify-email?token=ab12") && m.text.contains("24 hours"));
        assert!(m.html.contains("href=\"https://t.example/verify-email?token=ab12\""));
        let m = password_reset("a@b.c", "https://t.example", "cd34", 3_600).format("S <s@s.s>");
        assert!(m.contains("To: a@b.c\r\n") && m.contains("Subject: Reset your password\r\n"));
        assert!(m.contains("/reset-password?token=cd34") && m.contains("1 hour") && m.contains("text/html"));
        assert_eq!(hours(90), "2 minutes");
    }
}
