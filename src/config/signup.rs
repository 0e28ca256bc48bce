//! A tenant's sign-up form settings: the consent wording (read from its
//! files at load, so that the text hashed into the evidence is the text the
//! form showed), the origins allowed to use the form, and its timing.

use super::*;

/// The longest version name: it goes into evidence records and tokens.
const MAX_VERSION: usize = 64;

impl Config {
    /// Checks each tenant's form settings and reads the consent wording's
    /// files into the texts; `form_origins` are kept in their serialised
    /// form (`https://host[:port]`), which browsers send in `Origin`.
    pub(super) fn load_signup(&mut self, at: &Locator, problems: &mut Vec<ConfigProblem>) {
        let resolve = |p: &Path| self.resolve(p);
        let mut loaded = Vec::new();
        for (name, tenant) in &self.tenants {
            let key = |parts: &[&str]| {
                let mut k = vec!["tenants".to_string(), name.clone()];
                k.extend(parts.iter().map(|p| p.to_string()));
                k
            };
            let mut consent = tenant.consent.clone();
            load_wording(&mut consent, &key(&["consent"]), &resolve, at, problems);
            for (list, wording) in consent.lists.iter_mut() {
                let k = key(&["consent", "lists", list]);
                if !crate::values::address::is_valid_list_name(list) {
                    problems.push(at.problem_owned(&k, "not a valid list name".into()));
                }
                if !wording.lists.is_empty() {
                    problems.push(
                        at.problem_owned(
                            &k,
                            "a list's wording cannot have lists of its own".into(),
                        ),
                    );
                }
                if wording.version.is_none()
                    && wording.en.is_none()
                    && wording.de.is_none()
                    && wording.en_file.is_none()
                    && wording.de_file.is_none()
                {
                    problems.push(
                        at.problem_owned(&k, "a list's wording needs a version and a text".into()),
                    );
                }
                load_wording(wording, &k, &resolve, at, problems);
            }
            let mut origins = Vec::new();
            for origin in &tenant.form_origins {
                match form_origin(origin) {
                    Ok(o) => origins.push(o),
                    Err(why) => problems.push(at.problem_owned(&key(&["form_origins"]), why)),
                }
            }
            if let Some(url) = &tenant.privacy_url {
                if !is_web_url(url) {
                    problems.push(at.problem_owned(
                        &key(&["privacy_url"]),
                        format!("{url:?} is not an http or https URL"),
                    ));
                }
            }
            if tenant.form_max_age <= tenant.form_min_seconds {
                problems.push(at.problem_owned(
                    &key(&["form_max_age"]),
                    "must be longer than form_min_seconds".into(),
                ));
            }
            match (&tenant.human_check_url, &tenant.human_check_secret) {
                (Some(url), Some(_)) if is_web_url(url) => {}
                (Some(url), Some(_)) => problems.push(at.problem_owned(
                    &key(&["human_check_url"]),
                    format!("{url:?} is not an http or https URL"),
                )),
                (Some(_), None) => problems.push(at.problem_owned(
                    &key(&["human_check_url"]),
                    "a human check needs human_check_secret too".into(),
                )),
                (None, Some(_)) => problems.push(at.problem_owned(
                    &key(&["human_check_secret"]),
                    "human_check_secret without human_check_url".into(),
                )),
                (None, None) => {}
            }
            loaded.push((consent, origins));
        }
        for (tenant, (consent, origins)) in self.tenants.values_mut().zip(loaded) {
            tenant.consent = consent;
            tenant.form_origins = origins;
        }
    }
}

/// Checks one wording and moves its files' texts into `en`/`de`.
fn load_wording(
    w: &mut ConsentWording,
    key: &[String],
    resolve: &dyn Fn(&Path) -> PathBuf,
    at: &Locator,
    problems: &mut Vec<ConfigProblem>,
) {
    let sub = |k: &str| {
        let mut v = key.to_vec();
        v.push(k.to_string());
        v
    };
    for (lang, text, file) in [("en", &mut w.en, &w.en_file), ("de", &mut w.de, &w.de_file)] {
        let file_key = format!("{lang}_file");
        match (text.is_some(), file) {
            (true, Some(_)) => problems.push(at.problem_owned(
                &sub(&file_key),
                format!("give the {lang} text inline or as a file, not both"),
            )),
            (false, Some(path)) => {
                let path = resolve(path);
                match std::fs::read_to_string(&path) {
                    Ok(t) => *text = Some(t.trim().to_string()),
                    Err(e) => problems.push(
                        at.problem_owned(&sub(&file_key), format!("{}: {e}", path.display())),
                    ),
                }
            }
            _ => {}
        }
        if text.as_deref().is_some_and(|t| t.trim().is_empty()) {
            problems.push(at.problem_owned(&sub(lang), "the text is empty".into()));
        }
    }
    let has_text = w.en.is_some() || w.de.is_some();
    match &w.version {
        Some(v) if v.is_empty() || v.len() > MAX_VERSION || v.chars().any(char::is_control) => {
            problems.push(at.problem_owned(
                &sub("version"),
                format!("a version is 1 to {MAX_VERSION} printable characters"),
            ))
        }
        Some(_) if !has_text => problems.push(at.problem_owned(
            &sub("version"),
            "a version needs its text (en, de, en_file or de_file)".into(),
        )),
        None if has_text => problems.push(at.problem_owned(
            &sub("version"),
            "a consent text needs a version, so that the evidence can name it".into(),
        )),
        _ => {}
    }
}

fn is_web_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// An origin as browsers serialise it, or why `text` is not one.
fn form_origin(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not an origin: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{text:?} is not an http or https origin"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{text:?} has a path: an origin is scheme://host[:port] only"
        ));
    }
    Ok(url.origin().ascii_serialization())
}
