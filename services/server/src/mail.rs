//! E-mail through SMTP (lettre): the daily digest. A message carries counts and a link, never
//! patient data.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{ConfigError, Settings};

/// The server's way out to e-mail.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the e-mail could not be built: {0}")]
    Build(String),
    #[error("the SMTP server refused or could not be reached: {0}")]
    Send(String),
}

impl Mailer {
    /// The mailer for these settings, or `None` when no SMTP server is configured.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, ConfigError> {
        let Some(url) = &settings.smtp_url else {
            return Ok(None);
        };
        let parsed = url::Url::parse(url.expose())
            .map_err(|_| ConfigError("RENRAKUCHO_SMTP_URL: not a URL".into()))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| ConfigError("RENRAKUCHO_SMTP_URL: no host".into()))?
            .to_string();
        let mut builder = match (parsed.scheme(), parsed.username().is_empty()) {
            ("smtps", _) => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                .map_err(|e| ConfigError(format!("RENRAKUCHO_SMTP_URL: {e}")))?,
            ("smtp", false) => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                .map_err(|e| ConfigError(format!("RENRAKUCHO_SMTP_URL: {e}")))?,
            // A local relay without credentials: plain SMTP.
            _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
        };
        if let Some(port) = parsed.port() {
            builder = builder.port(port);
        }
        if !parsed.username().is_empty() {
            let user = percent_encoding::percent_decode_str(parsed.username())
                .decode_utf8_lossy()
                .to_string();
            let password = percent_encoding::percent_decode_str(parsed.password().unwrap_or(""))
                .decode_utf8_lossy()
                .to_string();
            builder = builder.credentials(Credentials::new(user, password));
        }
        let from = settings
            .mail_from
            .parse()
            .map_err(|_| ConfigError("RENRAKUCHO_MAIL_FROM: not an e-mail address".into()))?;
        Ok(Some(Self {
            transport: builder.build(),
            from,
        }))
    }

    /// Sends a plain-text message.
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(to.parse().map_err(|e| MailError::Build(format!("{e}")))?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Build(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| MailError::Send(e.to_string()))?;
        Ok(())
    }
}
