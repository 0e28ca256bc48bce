use super::*;

/// How the one link to `u.test/u` in `html` is seen: the first view that
/// hides it decides.
fn seen(html: &str) -> Seen {
    let doc = Document::parse(html);
    let link = doc
        .links()
        .find(|l| l.href().contains("u.test/u"))
        .unwrap_or_else(|| panic!("no link in {html}"));
    doc.views()
        .iter()
        .map(|view| doc.seen_in(&link, *view))
        .find(|s| *s != Seen::Visible)
        .unwrap_or(Seen::Visible)
}

fn hidden_because(html: &str, part: &str) {
    match seen(html) {
        Seen::Hidden(why) => assert!(why.contains(part), "{html}: {why}"),
        other => panic!("{html}: {other:?}, not hidden"),
    }
}

#[test]
fn links_are_found_in_the_forms_newsletters_use() {
    let html = r#"<p>Hi <A class="x" HREF='https://u.test/a?x=1&amp;y=2'><b>Unsub&shy;scribe</b>
        here</A> <a href=https://u.test/b>b</a> <a name="top">no href</a> <abbr>x</abbr>
        <area href="z"></p>"#;
    let doc = Document::parse(html);
    let links: Vec<_> = doc.links().collect();
    assert_eq!(links.len(), 2);
    assert_eq!(links[0].href(), "https://u.test/a?x=1&y=2");
    assert_eq!(links[0].text(), "Unsub\u{ad}scribe here");
    assert_eq!(links[1].href(), "https://u.test/b");
    // An unclosed link is closed by the end of the document, as browsers do.
    let doc = Document::parse("<a href=https://u.test/u>unclosed");
    assert_eq!(doc.links().count(), 1);
}

#[test]
fn plain_and_styled_footers_are_seen() {
    for html in [
        r#"<p><a href="https://u.test/u">Unsubscribe</a></p>"#,
        r#"<td style="font-size:11px;color:#999999"><a href="https://u.test/u" style="color:#999999">Abmelden</a></td>"#,
        r#"<div style="font-size:0"><span style="font-size:13px"><a href="https://u.test/u">Se désinscrire</a></span></div>"#,
        r#"<table bgcolor=#000000><tr><td><a href="https://u.test/u" style="color:#ffffff">Unsubscribe</a></td></tr></table>"#,
        r#"<div style="display:none">preheader</div><a href="https://u.test/u"><img src="x.png" alt="Unsubscribe" width="90"></a>"#,
        r#"<details open><p><a href="https://u.test/u">Unsubscribe</a></p></details>"#,
        r#"<details><summary><a href="https://u.test/u">Unsubscribe</a></summary></details>"#,
        r#"<div hidden style="display:block"><a href="https://u.test/u">Unsubscribe</a></div>"#,
        r#"<div style="visibility:hidden"><a style="visibility:visible" href="https://u.test/u">Unsubscribe</a></div>"#,
        r#"<div style="background:url(bg.jpg)"><a href="https://u.test/u" style="color:#fff">Unsubscribe</a></div>"#,
    ] {
        assert_eq!(seen(html), Seen::Visible, "{html}");
    }
}

#[test]
fn every_way_of_hiding_a_link_is_seen_through() {
    let u = r#"href="https://u.test/u""#;
    for (html, why) in [
        (
            format!(r#"<div style="display:none"><a {u}>Unsubscribe</a></div>"#),
            "display:none",
        ),
        (
            format!(r#"<a {u} style="DISPLAY: none !important">Unsubscribe</a>"#),
            "display:none",
        ),
        (
            format!(r#"<span style="visibility:hidden"><a {u}>Unsubscribe</a></span>"#),
            "visibility:hidden",
        ),
        (
            format!(r#"<p style="opacity:0"><a {u}>Unsubscribe</a></p>"#),
            "opacity:0",
        ),
        (
            format!(
                r#"<p style="opacity:.2"><span style="opacity:.3"><a {u}>Unsubscribe</a></span></p>"#
            ),
            "opacity:",
        ),
        (
            format!(r#"<p style="font-size:0"><a {u}>Unsubscribe</a></p>"#),
            "font-size 0px",
        ),
        (
            format!(r#"<p style="font-size:1px"><a {u}>Unsubscribe</a></p>"#),
            "font-size 1px",
        ),
        (
            format!(
                r#"<p style="font-size:10px"><a {u} style="font-size:50%">Unsubscribe</a></p>"#
            ),
            "font-size 5px",
        ),
        (
            format!(r#"<p style="font: 0/0 a"><a {u}>Unsubscribe</a></p>"#),
            "font-size 0px",
        ),
        (
            format!(r#"<font size="1"><a {u} style="font-size:.5em">Unsubscribe</a></font>"#),
            "font-size 5px",
        ),
        (
            format!(r#"<div style="max-height:0;overflow:hidden"><a {u}>Unsubscribe</a></div>"#),
            "max-height:0 with overflow:hidden",
        ),
        (
            format!(r#"<div style="height:0px;overflow:hidden"><a {u}>Unsubscribe</a></div>"#),
            "height:0",
        ),
        (
            format!(r#"<div hidden><a {u}>Unsubscribe</a></div>"#),
            "display:none",
        ),
        (
            format!(r#"<a {u} style="color:#ffffff">Unsubscribe</a>"#),
            "background colour #ffffff",
        ),
        (
            format!(r#"<a {u} style="color:#fefefe">Unsubscribe</a>"#),
            "#fefefe",
        ),
        (
            format!(
                r#"<table><tr><td bgcolor=#336699><a {u} style="color:#336699">Unsubscribe</a></td></tr></table>"#
            ),
            "#336699",
        ),
        (
            format!(
                r#"<table><tr><td style="background-color:#000"><font color="black"><a {u} style="color:inherit">Unsubscribe</a></font></td></tr></table>"#
            ),
            "#000000",
        ),
        (
            format!(r#"<a {u}><span style="color:white">Unsubscribe</span></a>"#),
            "#ffffff",
        ),
        (
            format!(r#"<body link=#ffffff><a {u}>Unsubscribe</a></body>"#),
            "#ffffff",
        ),
        (
            format!(r#"<a {u} style="color:rgba(0,0,0,0)">Unsubscribe</a>"#),
            "transparent",
        ),
        (
            format!(r#"<a {u} style="color:transparent">Unsubscribe</a>"#),
            "transparent",
        ),
        (
            format!(r#"<p>x</p><template><a {u}>Unsubscribe</a></template>"#),
            "<template>",
        ),
        (
            format!(r#"<p>x</p><noscript><a {u}>Unsubscribe</a></noscript>"#),
            "<noscript>",
        ),
        (
            format!(r#"<details><p><a {u}>Unsubscribe</a></p></details>"#),
            "closed <details>",
        ),
        (
            format!(r#"<div style="mso-hide:all"><a {u}>Unsubscribe</a></div>"#),
            "mso-hide:all",
        ),
        (
            format!(r#"<div style="position:absolute;left:-9999px"><a {u}>Unsubscribe</a></div>"#),
            "off the screen",
        ),
        (
            format!(r#"<p style="text-indent:-5000px"><a {u}>Unsubscribe</a></p>"#),
            "off the screen",
        ),
        (
            format!(r#"<a {u}><span style="display:none">Unsubscribe</span>.</a>"#),
            "display:none",
        ),
        (
            format!(r#"<a {u}><img src="u.png" alt="Unsubscribe" width="1" height="1"></a>"#),
            "too small",
        ),
        (
            format!(r#"<a {u}><img src="u.png" alt="Unsubscribe" style="display:none"></a>"#),
            "display:none",
        ),
    ] {
        hidden_because(&html, why);
    }
}

#[test]
fn style_blocks_hide_by_element_class_and_id() {
    let u = r#"href="https://u.test/u""#;
    for (html, why) in [
        (
            format!(
                r#"<style>.f {{ display: none }}</style><p class="f"><a {u}>Unsubscribe</a></p>"#
            ),
            "display:none on <p class=\"f\">",
        ),
        (
            format!(r#"<style>#x a {{ color: #fff }}</style><p id="x"><a {u}>Unsubscribe</a></p>"#),
            "#ffffff",
        ),
        (
            format!(r#"<style>a {{ font-size: 1px }}</style><a {u}>Unsubscribe</a>"#),
            "font-size 1px",
        ),
        // The important sheet rule beats the inline style.
        (
            format!(
                r#"<style>.f {{ display:none !important }}</style><p class="f" style="display:block"><a {u}>Unsubscribe</a></p>"#
            ),
            "display:none",
        ),
        // A more specific rule wins whatever its place.
        (
            format!(
                r#"<style>p.f {{ visibility:hidden }} .f {{ visibility:visible }}</style><p class="f"><a {u}>Unsubscribe</a></p>"#
            ),
            "visibility:hidden",
        ),
        // Attribute and structural selectors match as in a browser.
        (
            format!(
                r#"<style>a[href*="u.test/u"] {{ display:none }}</style><a {u}>Unsubscribe</a>"#
            ),
            "display:none on <a>",
        ),
        (
            format!(
                r#"<style>p:last-child a {{ font-size:0 }}</style><div><p>x</p><p><a {u}>Unsubscribe</a></p></div>"#
            ),
            "font-size 0px",
        ),
        // A style block in the body applies as well.
        (
            format!(r#"<p class="f"><a {u}>Unsubscribe</a></p><style>.f{{opacity:0}}</style>"#),
            "opacity:0",
        ),
        // What a phone or dark mode shows counts as much as the desktop.
        (
            format!(
                r#"<style>@media only screen and (max-width:600px) {{ .f {{ display:none!important }} }}</style><p class="f"><a {u}>Unsubscribe</a></p>"#
            ),
            "on a phone-sized screen",
        ),
        (
            format!(
                r#"<style>@media (prefers-color-scheme: dark) {{ body {{ background:#111 }} .f a {{ color:#111111 }} }}</style><body><p class="f"><a {u}>Unsubscribe</a></p></body>"#
            ),
            "in dark mode",
        ),
    ] {
        hidden_because(&html, why);
    }
    // The inline style beats a normal sheet rule; print rules are not a screen's.
    for html in [
        format!(
            r#"<style>.f {{ display:none }}</style><p class="f" style="display:block"><a {u}>Unsubscribe</a></p>"#
        ),
        format!(r#"<style>@media print {{ a {{ display:none }} }}</style><a {u}>Unsubscribe</a>"#),
        format!(
            r#"<style>@media (prefers-color-scheme: dark) {{ body {{ background:#111 }} a {{ color:#8ab4f8 }} }}</style><a {u}>Unsubscribe</a>"#
        ),
    ] {
        assert_eq!(seen(&html), Seen::Visible, "{html}");
    }
}

#[test]
fn the_tree_is_built_as_a_browser_builds_it() {
    let u = r#"href="https://u.test/u""#;
    // `</div>` inside a table cell does not close the hidden div.
    hidden_because(
        &format!(
            r#"<div style="display:none"><table><tr><td></div><a {u}>Unsubscribe</a></td></tr></table>"#
        ),
        "display:none",
    );
    // A hidden formatting element is reopened in the next paragraph.
    hidden_because(
        &format!(r#"<p><font style="display:none">x</p><p><a {u}>Unsubscribe</a></p>"#),
        "display:none",
    );
    // A block closes an open paragraph, so the link is not inside it.
    assert_eq!(
        seen(&format!(
            r#"<p style="display:none">x<div><a {u}>Unsubscribe</a></div>"#
        )),
        Seen::Visible
    );
}

#[test]
fn a_link_without_visible_characters_has_no_text() {
    for html in [
        r#"<a href="https://u.test/u">&#8203;&nbsp;&shy;</a>"#,
        r#"<a href="https://u.test/u"><img src="u.png"></a>"#,
        r#"<a href="https://u.test/u"><img src="u.png" alt=" "></a>"#,
        r#"<a href="https://u.test/u"></a>"#,
    ] {
        assert_eq!(seen(html), Seen::NoText, "{html}");
    }
}

#[test]
fn text_that_is_never_a_link_is_found() {
    let doc = Document::parse(
        "<head><title><a href=https://u.test/u>x</a></title></head>\
         <!-- <a href=\"https://u.test/c\">Unsubscribe</a> --><textarea>https://u.test/t</textarea>",
    );
    assert_eq!(doc.links().count(), 0);
    let places: Vec<String> = doc.unshown_texts().map(|(p, _)| p).collect();
    assert_eq!(
        places,
        [
            "<title>, whose content is text",
            "an HTML comment",
            "<textarea>, whose content is text"
        ]
    );
}

/// Markup made of pieces the parser and the cascade decide on, in random
/// order: nothing panics, and every link's text is in the input's text.
#[test]
fn random_markup_never_breaks_the_reader() {
    const PIECES: [&str; 20] = [
        "<a href=https://u.test/u>",
        "</a>",
        "<div style=\"display:none\">",
        "</div>",
        "<style>a{color:#fff}",
        "</style>",
        "<p>",
        "<table><td>",
        "<font color=red size=-9>",
        "Unsubscribe",
        "<!--",
        "-->",
        "é",
        "<template>",
        "<img alt=x width=0>",
        "&amp;",
        "<details>",
        "<b style='font: 1px/0'>",
        "<td bgcolor=zz>",
        "@media (max-width:1px){",
    ];
    for html in crate::values::random::random_strings(&PIECES, 5, 3_000, 16) {
        let doc = Document::parse(&html);
        for link in doc.links() {
            for view in doc.views() {
                let _ = (link.text(), doc.seen_in(&link, *view));
            }
        }
        let _ = doc.unshown_texts().count();
    }
}
