//! HTML bodies as a mail client reads them: the document tree built by
//! html5ever (the HTML5 tree construction of Servo, so implied end tags,
//! misnested formatting elements and foster-parented table content end up
//! where a browser puts them), the `<a href>` elements in it, and the CSS of
//! `style` attributes and `<style>` blocks ([`css`]) that decides whether a
//! link can be seen ([`seen`]).
//!
//! Scripting is off while parsing, as in a mail client: `<noscript>`
//! content is parsed as elements (and then judged as not shown) rather than
//! as text.

pub mod css;
mod seen;

use html5ever::tendril::TendrilSink;
use scraper::{ElementRef, Html, HtmlTreeSink, Node};

pub use seen::{Seen, MIN_CONTRAST, MIN_FONT_PX};

/// An HTML part, parsed, with the rules of its `<style>` blocks.
pub struct Document {
    html: Html,
    rules: Vec<css::Rule>,
}

/// One `<a href>` element.
#[derive(Clone, Copy)]
pub struct Link<'a> {
    element: ElementRef<'a>,
    href: &'a str,
}

impl<'a> Link<'a> {
    /// The href, trimmed, character references decoded.
    pub fn href(&self) -> &'a str {
        self.href
    }

    /// The text a reader would see if nothing hid it: every text node in the
    /// link, white space collapsed.
    pub fn text(&self) -> String {
        collapse_space(&self.element.text().collect::<String>())
    }
}

/// Elements whose content the parser keeps as text (raw text and RCDATA):
/// an `<a href>` written in them is not a link anyone can click.
const TEXT_ONLY: [&str; 9] = [
    "title",
    "textarea",
    "script",
    "style",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "plaintext",
];

impl Document {
    pub fn parse(html: &str) -> Document {
        let opts = html5ever::ParseOpts {
            tree_builder: html5ever::tree_builder::TreeBuilderOpts {
                scripting_enabled: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let html =
            html5ever::parse_document(HtmlTreeSink::new(Html::new_document()), opts).one(html);
        let mut rules = Vec::new();
        for node in html.tree.nodes() {
            let Some(element) = ElementRef::wrap(node) else {
                continue;
            };
            // A `<template>`'s style sheet is inert until a script uses it.
            if element.value().name() == "style"
                && !element.ancestors().any(|a| {
                    a.value()
                        .as_element()
                        .is_some_and(|e| e.name() == "template")
                })
            {
                rules.extend(css::sheet(&element.text().collect::<String>()));
            }
        }
        Document { html, rules }
    }

    /// The `<a>` elements with a non-empty href, in document order.
    pub fn links(&self) -> impl Iterator<Item = Link<'_>> {
        self.html.tree.nodes().filter_map(|node| {
            let element = ElementRef::wrap(node)?;
            if element.value().name() != "a" {
                return None;
            }
            let href = element.value().attr("href")?.trim();
            (!href.is_empty()).then_some(Link { element, href })
        })
    }

    /// The views this document is judged in (see [`css::VIEWS`]).
    pub fn views(&self) -> &'static [css::View] {
        seen::views(self)
    }

    /// What of `link` a reader sees in `view`.
    pub fn seen_in(&self, link: &Link, view: css::View) -> Seen {
        seen::link_in(self, link.element, view)
    }

    /// Text that is in the document but never shown as a link, with where
    /// it is: comments and the content of [`TEXT_ONLY`] elements.
    pub fn unshown_texts(&self) -> impl Iterator<Item = (String, &str)> {
        self.html
            .tree
            .nodes()
            .filter_map(|node| match node.value() {
                Node::Comment(c) => Some(("an HTML comment".to_string(), &*c.comment)),
                Node::Text(t) => {
                    let parent = node.parent()?;
                    let name = parent.value().as_element()?.name();
                    TEXT_ONLY
                        .contains(&name)
                        .then(|| (format!("<{name}>, whose content is text"), &*t.text))
                }
                _ => None,
            })
    }
}

/// White space (and no-break spaces) collapsed to single spaces, trimmed.
fn collapse_space(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| c.is_whitespace() || c == '\u{a0}')
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests;
