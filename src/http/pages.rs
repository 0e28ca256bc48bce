//! The small HTML pages recipients see (unsubscribe, confirm), in English and
//! German, picked by the browser's `Accept-Language`. A tenant may override a
//! page with its own template file (`pages_dir`, one file per page and
//! language, e.g. `confirm.de.html`, with `{title}` and `{body}` filled in).

use axum::response::Html;

use crate::config::TenantConfig;

pub use crate::values::Lang;

/// The pages' and mails' texts in each language.
impl Lang {
    /// The text of `key` in this language.
    pub fn t(self, key: Text) -> &'static str {
        use Text::*;
        match (self, key) {
            (Lang::En, InvalidTitle) => "Link not valid",
            (Lang::De, InvalidTitle) => "Link ungültig",
            (Lang::En, InvalidUnsubscribe) => "This unsubscribe link is not valid.",
            (Lang::De, InvalidUnsubscribe) => "Dieser Abmeldelink ist ungültig.",
            (Lang::En, UnsubscribeTitle) => "Unsubscribe",
            (Lang::De, UnsubscribeTitle) => "Abmelden",
            (Lang::En, UnsubscribeQuestion) => "Stop mail to",
            (Lang::De, UnsubscribeQuestion) => "Keine Mails mehr an",
            (Lang::En, UnsubscribeList) => "Unsubscribe from this list",
            (Lang::De, UnsubscribeList) => "Von dieser Liste abmelden",
            (Lang::En, UnsubscribeAll) => "Unsubscribe from all mail of this sender",
            (Lang::De, UnsubscribeAll) => "Von allen Mails dieses Absenders abmelden",
            (Lang::En, UnsubscribedTitle) => "Unsubscribed",
            (Lang::De, UnsubscribedTitle) => "Abgemeldet",
            (Lang::En, UnsubscribedBody) => "Done: you will get no more of this mail.",
            (Lang::De, UnsubscribedBody) => "Erledigt: Sie erhalten diese Mails nicht mehr.",
            (Lang::En, RetryTitle) => "Try again",
            (Lang::De, RetryTitle) => "Bitte erneut versuchen",
            (Lang::En, RetryBody) => "Something went wrong; please try again.",
            (Lang::De, RetryBody) => {
                "Etwas ist schiefgegangen; bitte versuchen Sie es noch einmal."
            }
            (Lang::En, SubscribeTitle) => "Almost done",
            (Lang::De, SubscribeTitle) => "Fast geschafft",
            (Lang::En, SubscribeBody) => {
                "Please check your inbox: we sent you a mail with a link to confirm your subscription."
            }
            (Lang::De, SubscribeBody) => {
                "Bitte sehen Sie in Ihr Postfach: Wir haben Ihnen eine Mail mit einem Link zur Bestätigung geschickt."
            }
            (Lang::En, BadRequestTitle) => "Please check your entry",
            (Lang::De, BadRequestTitle) => "Bitte prüfen Sie Ihre Eingabe",
            (Lang::En, TooManyTitle) => "Too many requests",
            (Lang::De, TooManyTitle) => "Zu viele Anfragen",
            (Lang::En, TooManyBody) => {
                "Too many confirmation mails were requested today. Please try again tomorrow."
            }
            (Lang::De, TooManyBody) => {
                "Heute wurden zu viele Bestätigungsmails angefordert. Bitte versuchen Sie es morgen noch einmal."
            }
            (Lang::En, ConfirmTitle) => "Confirm your subscription",
            (Lang::De, ConfirmTitle) => "Anmeldung bestätigen",
            (Lang::En, ConfirmQuestion) => "Confirm that you want mail at",
            (Lang::De, ConfirmQuestion) => "Bestätigen Sie, dass Sie Mails erhalten möchten an",
            (Lang::En, ConfirmButton) => "Yes, subscribe me",
            (Lang::De, ConfirmButton) => "Ja, ich möchte die Mails erhalten",
            (Lang::En, ConfirmedTitle) => "Subscription confirmed",
            (Lang::De, ConfirmedTitle) => "Anmeldung bestätigt",
            (Lang::En, ConfirmedBody) => "Thank you: your subscription is confirmed.",
            (Lang::De, ConfirmedBody) => "Danke: Ihre Anmeldung ist bestätigt.",
            (Lang::En, InvalidConfirm) => "This confirmation link is not valid.",
            (Lang::De, InvalidConfirm) => "Dieser Bestätigungslink ist ungültig.",
            (Lang::En, ExpiredTitle) => "Link expired",
            (Lang::De, ExpiredTitle) => "Link abgelaufen",
            (Lang::En, FormTitle) => "Subscribe",
            (Lang::De, FormTitle) => "Anmelden",
            (Lang::En, FormEmail) => "Your email address",
            (Lang::De, FormEmail) => "Ihre E-Mail-Adresse",
            (Lang::En, FormSubmit) => "Subscribe",
            (Lang::De, FormSubmit) => "Anmelden",
            (Lang::En, FormNext) => {
                "We will send you a mail with a link: your subscription starts when you confirm it."
            }
            (Lang::De, FormNext) => {
                "Wir schicken Ihnen eine Mail mit einem Link: Ihre Anmeldung gilt, sobald Sie ihn bestätigen."
            }
            (Lang::En, FormPrivacy) => "Privacy notice",
            (Lang::De, FormPrivacy) => "Datenschutzhinweise",
            (Lang::En, FormHoneypot) => "Leave this field empty",
            (Lang::De, FormHoneypot) => "Dieses Feld bitte leer lassen",
            (Lang::En, FormOtherLanguage) => "Deutsch",
            (Lang::De, FormOtherLanguage) => "English",
            (Lang::En, BackToForm) => "Back to the form",
            (Lang::De, BackToForm) => "Zurück zum Formular",
            (Lang::En, RefusedConsent) => {
                "Please tick the box to agree to receive the mail: without your consent we send nothing."
            }
            (Lang::De, RefusedConsent) => {
                "Bitte setzen Sie das Häkchen, wenn Sie die Mails erhalten möchten: Ohne Ihre Einwilligung senden wir nichts."
            }
            (Lang::En, RefusedTooFast) => {
                "That was very fast. Please wait a few seconds and send the form again."
            }
            (Lang::De, RefusedTooFast) => {
                "Das ging sehr schnell. Bitte warten Sie einige Sekunden und senden Sie das Formular noch einmal."
            }
            (Lang::En, RefusedStale) => {
                "This form is out of date. Please load it again and send it once more."
            }
            (Lang::De, RefusedStale) => {
                "Dieses Formular ist veraltet. Bitte laden Sie es neu und senden Sie es noch einmal."
            }
            (Lang::En, RefusedForm) => "The form was not filled in as expected.",
            (Lang::De, RefusedForm) => "Das Formular wurde nicht wie erwartet ausgefüllt.",
            (Lang::En, RefusedHuman) => "The check that you are a person did not pass. Please try again.",
            (Lang::De, RefusedHuman) => {
                "Die Prüfung, dass Sie ein Mensch sind, war nicht erfolgreich. Bitte versuchen Sie es erneut."
            }
            (Lang::En, ExpiredBody) => {
                "This confirmation link has expired or was replaced. Please subscribe again."
            }
            (Lang::De, ExpiredBody) => {
                "Dieser Bestätigungslink ist abgelaufen oder wurde ersetzt. Bitte melden Sie sich erneut an."
            }
        }
    }
}

/// The texts of the pages and the confirmation mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    InvalidTitle,
    InvalidUnsubscribe,
    UnsubscribeTitle,
    UnsubscribeQuestion,
    UnsubscribeList,
    UnsubscribeAll,
    UnsubscribedTitle,
    UnsubscribedBody,
    RetryTitle,
    RetryBody,
    SubscribeTitle,
    SubscribeBody,
    BadRequestTitle,
    TooManyTitle,
    TooManyBody,
    ConfirmTitle,
    ConfirmQuestion,
    ConfirmButton,
    ConfirmedTitle,
    ConfirmedBody,
    InvalidConfirm,
    ExpiredTitle,
    ExpiredBody,
    FormTitle,
    FormEmail,
    FormSubmit,
    FormNext,
    FormPrivacy,
    FormHoneypot,
    FormOtherLanguage,
    BackToForm,
    RefusedConsent,
    RefusedTooFast,
    RefusedStale,
    RefusedForm,
    RefusedHuman,
}

/// A complete page. `body` is trusted HTML (callers escape what they insert).
/// With a tenant whose `pages_dir` holds `{name}.{lang}.html`, that template
/// is used instead of the built-in frame.
pub fn page(
    lang: Lang,
    tenant: Option<&TenantConfig>,
    name: &str,
    title: &str,
    body: &str,
) -> Html<String> {
    if let Some(dir) = tenant.and_then(|t| t.pages_dir.as_ref()) {
        let file = dir.join(format!("{name}.{}.html", lang.code()));
        if let Ok(template) = std::fs::read_to_string(&file) {
            return Html(template.replace("{title}", title).replace("{body}", body));
        }
    }
    Html(format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
<style>body{{font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em;line-height:1.5}}\
button{{font-size:1em;padding:.5em 1em;margin:.25em 0}}</style></head><body><main><h1>{title}</h1>{body}</main></body></html>",
        lang.code()
    ))
}
