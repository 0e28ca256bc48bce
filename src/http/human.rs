//! The hook for a CAPTCHA or proof-of-work check on sign-ups. postwarden
//! ships no third-party service: a tenant points `human_check_url` at a
//! verifier of its choice that speaks the "siteverify" protocol shared by
//! the common CAPTCHA services and by self-hosted proof-of-work servers
//! (POST `secret`, `response` and `remoteip` as a form; the JSON answer's
//! `success` says yes or no). Its widget goes on the tenant's own form
//! (postwarden's page loads nothing from other hosts); the widget's field
//! name is `human_check_field`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::config::TenantConfig;

/// Whether a sign-up's response to the human check shows a person.
pub trait HumanCheck: Send + Sync {
    /// Ok(false): the verifier said no. Err: it could not be asked (the
    /// sign-up is answered "try again", not refused).
    fn verify<'a>(
        &'a self,
        response: &'a str,
        client_ip: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;
}

/// A verifier that speaks siteverify.
pub struct SiteVerify {
    pub url: String,
    pub secret: String,
}

impl HumanCheck for SiteVerify {
    fn verify<'a>(
        &'a self,
        response: &'a str,
        client_ip: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("secret", &self.secret)
                .append_pair("response", response)
                .append_pair("remoteip", client_ip)
                .finish();
            let headers = [(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded".to_string(),
            )];
            let reply = crate::http_client::post(
                &self.url,
                &headers,
                body.into_bytes(),
                Duration::from_secs(10),
            )
            .await?;
            if !reply.status.is_success() {
                return Err(format!("HTTP {}", reply.status));
            }
            let v: serde_json::Value = serde_json::from_slice(&reply.body)
                .map_err(|e| format!("the answer is not JSON: {e}"))?;
            Ok(v.get("success").and_then(|s| s.as_bool()) == Some(true))
        })
    }
}

/// The tenant's human check of a sign-up: true without one configured;
/// false without a response to check.
pub async fn check(
    tenant: &TenantConfig,
    response: Option<&str>,
    client_ip: &str,
) -> Result<bool, String> {
    let (Some(url), Some(secret)) = (&tenant.human_check_url, &tenant.human_check_secret) else {
        return Ok(true);
    };
    let Some(response) = response else {
        return Ok(false);
    };
    let verifier = SiteVerify {
        url: url.clone(),
        secret: secret.clone(),
    };
    verifier.verify(response, client_ip).await
}
