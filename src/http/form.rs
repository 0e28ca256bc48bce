//! The sign-up form: `GET /subscribe/{tenant}/{list}/form` serves a small,
//! accessible page in English or German (or, to `Accept: application/json`,
//! what a site's own JavaScript needs to show the same form), with the
//! consent checkbox, the privacy link, a honeypot and a signed token that
//! says when the form was served. Cross-origin JavaScript may use these
//! endpoints only from the tenant's `form_origins` (CORS); a plain HTML form
//! post works from anywhere, as browsers send those without asking.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::pages::{page, Lang, Text};
use super::AppState;
use crate::config::{Config, TenantConfig};
use crate::consent::form::{FormToken, HONEYPOT_FIELD};
use crate::consent::wording::{self, Wording};

/// The longest `source` (the page a form is embedded in) that is kept.
pub(super) const MAX_SOURCE: usize = 500;

/// The `Origin` of the request if the tenant lists it in `form_origins`.
pub(super) fn allowed_origin(headers: &HeaderMap, tenant: &TenantConfig) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    tenant
        .form_origins
        .iter()
        .any(|o| o == text)
        .then(|| origin.clone())
}

/// Adds the CORS header for an allowed origin; `Vary: Origin` always, so
/// that a cache never hands one origin's answer to another.
pub(super) fn with_cors(mut response: Response, origin: Option<HeaderValue>) -> Response {
    let h = response.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

/// `OPTIONS` on the sign-up endpoints: the CORS preflight a browser sends
/// before a JSON post. Only a listed origin gets the headers that let the
/// post go; any other gets none, and its browser stops there.
pub async fn preflight(
    State(app): State<AppState>,
    Path((tenant, _list)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let config = app.ctx.settings().config.clone();
    let origin = config
        .tenants
        .get(&tenant)
        .and_then(|t| allowed_origin(&headers, t));
    let mut response = StatusCode::NO_CONTENT.into_response();
    if origin.is_some() {
        let h = response.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    with_cors(response, origin)
}

#[derive(Debug, Default, Deserialize)]
pub struct FormQuery {
    /// en or de; absent: the browser's `Accept-Language`.
    lang: Option<String>,
    /// The page the form is embedded in, kept as evidence.
    source: Option<String>,
}

/// `en` or `de` as a language.
pub(super) fn parse_lang(code: &str) -> Option<Lang> {
    match code.trim().to_ascii_lowercase().as_str() {
        "en" => Some(Lang::En),
        "de" => Some(Lang::De),
        _ => None,
    }
}

pub async fn show(
    State(app): State<AppState>,
    Path((tenant, list)): Path<(String, String)>,
    Query(q): Query<FormQuery>,
    headers: HeaderMap,
) -> Response {
    let config = app.ctx.settings().config.clone();
    let lang = q
        .lang
        .as_deref()
        .and_then(parse_lang)
        .unwrap_or_else(|| Lang::from_headers(&headers));
    let Some(tc) = config.tenants.get(&tenant) else {
        return (StatusCode::NOT_FOUND, "no such tenant\n").into_response();
    };
    if !crate::consent::address::is_valid_list_name(&list) {
        return (StatusCode::BAD_REQUEST, "the list name is not valid\n").into_response();
    }
    let served_ms = crate::values::clock::now_millis();
    let token = FormToken {
        tenant: tenant.clone(),
        list: list.clone(),
        served_ms,
    }
    .sign(&app.ctx.secret);
    let w = wording::current(tc, &list, lang);
    let source = q
        .source
        .filter(|s| !s.is_empty() && s.len() <= MAX_SOURCE && !s.chars().any(char::is_control));
    let json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let origin = allowed_origin(&headers, tc);
    let mut response = if json {
        Json(serde_json::json!({
            "tenant": tenant,
            "list": list,
            "post_url": format!("{}/subscribe/{tenant}/{list}", config.public_base_url()),
            "lang": lang.code(),
            "consent": {"version": w.version, "lang": w.lang, "text": w.text, "sha256": w.sha256},
            "privacy_url": tc.privacy_url,
            "form_token": token,
            "min_seconds": tc.form_min_seconds,
            "max_age": tc.form_max_age,
            "honeypot_field": HONEYPOT_FIELD,
        }))
        .into_response()
    } else {
        let body = form_html(tc, lang, &w, &token, source.as_deref());
        page(lang, Some(tc), "form", lang.t(Text::FormTitle), &body).into_response()
    };
    let h = response.headers_mut();
    // The token holds the time it was served: never from a cache.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(csp) = HeaderValue::from_str(&policy(tc)) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    with_cors(response, origin)
}

/// The form page's Content-Security-Policy: nothing from other hosts, posts
/// only to itself, framed only by the tenant's own `form_origins`.
fn policy(tc: &TenantConfig) -> String {
    let mut ancestors = String::from("'self'");
    for o in &tc.form_origins {
        ancestors.push(' ');
        ancestors.push_str(o);
    }
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    )
}

/// The form itself. It posts to its own URL (so it works behind any proxy
/// path); the checkbox is never pre-ticked.
fn form_html(
    tc: &TenantConfig,
    lang: Lang,
    w: &Wording,
    token: &str,
    source: Option<&str>,
) -> String {
    let e = |s: &str| html_escape::encode_double_quoted_attribute(s).to_string();
    let t = |s: &str| html_escape::encode_text(s).to_string();
    let privacy = tc
        .privacy_url
        .as_deref()
        .map(|u| {
            format!(
                "<p><a href=\"{}\">{}</a></p>",
                e(u),
                t(lang.t(Text::FormPrivacy))
            )
        })
        .unwrap_or_default();
    let source_field = source
        .map(|s| format!("<input type=\"hidden\" name=\"source\" value=\"{}\">", e(s)))
        .unwrap_or_default();
    let other = match lang {
        Lang::En => "de",
        Lang::De => "en",
    };
    let switch = match source {
        Some(s) => format!("?lang={other}&amp;source={}", e(&urlencode(s))),
        None => format!("?lang={other}"),
    };
    format!(
        "<form method=\"post\">\
<p><label for=\"pw-email\">{email}</label><br>\
<input id=\"pw-email\" type=\"email\" name=\"email\" required autocomplete=\"email\" size=\"30\"></p>\
<p><input id=\"pw-consent\" type=\"checkbox\" name=\"consent\" value=\"yes\" required> \
<label for=\"pw-consent\" lang=\"{text_lang}\">{text}</label></p>\
<div aria-hidden=\"true\" style=\"position:absolute;left:-10000px;top:auto;width:1px;height:1px;overflow:hidden\">\
<label for=\"pw-{hp}\">{hp_label}</label><input id=\"pw-{hp}\" type=\"text\" name=\"{hp}\" tabindex=\"-1\" autocomplete=\"off\"></div>\
<input type=\"hidden\" name=\"consent_version\" value=\"{version}\">\
<input type=\"hidden\" name=\"lang\" value=\"{lang}\">\
<input type=\"hidden\" name=\"form_token\" value=\"{token}\">{source_field}\
<p>{next}</p>\
<button type=\"submit\">{submit}</button></form>{privacy}\
<p><a href=\"{switch}\" hreflang=\"{other}\" lang=\"{other}\">{other_name}</a></p>",
        email = t(lang.t(Text::FormEmail)),
        text_lang = e(&w.lang),
        text = t(&w.text),
        hp = HONEYPOT_FIELD,
        hp_label = t(lang.t(Text::FormHoneypot)),
        version = e(&w.version),
        lang = lang.code(),
        token = e(token),
        next = t(lang.t(Text::FormNext)),
        submit = t(lang.t(Text::FormSubmit)),
        other_name = lang.t(Text::FormOtherLanguage),
    )
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The form page's address for a list of a tenant.
pub fn form_url(config: &Config, tenant: &str, list: &str) -> String {
    format!(
        "{}/subscribe/{}/{}/form",
        config.public_base_url(),
        urlencode(tenant),
        urlencode(list)
    )
}

/// The HTML to paste into another site's page to embed the form: a frame of
/// the form page, so that the wording shown is always the one the evidence
/// records. The embedding site must be one of the tenant's `form_origins`.
pub fn snippet(config: &Config, tenant: &str, list: &str) -> String {
    let url = form_url(config, tenant, list);
    format!(
        "<iframe src=\"{url}?source=PAGE-URL\" title=\"Newsletter\" \
loading=\"lazy\" style=\"border:0;width:100%;max-width:36em;height:30em\"></iframe>\n"
    )
}
