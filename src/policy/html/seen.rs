//! Whether a link can be seen: the cascade of presentational attributes,
//! `<style>` rules and `style` attributes (CSS Cascade 4 §6: importance,
//! then origin, then specificity, then order) for each element from the
//! root to the link's text, with the inherited properties carried down.
//!
//! A link is seen when, in each view of [`css::VIEWS`] (a phone and dark
//! mode only where the sheet has media rules), some of its text with a letter
//! or digit, or an image with alt text, is shown: not under `display:none`,
//! `visibility:hidden`, `opacity:0`, `mso-hide:all`, a closed `<details>`,
//! `<template>` or `<noscript>`; not clipped to nothing by a zero height or
//! width with `overflow:hidden`; not moved off the screen; in a font of at
//! least [`MIN_FONT_PX`]; in a colour that stands out from its background
//! by at least [`MIN_CONTRAST`].

use scraper::ElementRef;

use super::css::{self, Background, Declaration, Dimension, FontSize, Paint, Property, Rgba, View};
use super::Document;
use crate::policy::confusables::has_visible;

/// Text smaller than this (px) is not read: 6 pt. Preheader tricks use 0
/// or 1 px; the smallest legal footers in common templates use 10 or 11 px.
pub const MIN_FONT_PX: f32 = 8.0;

/// A WCAG 2 contrast ratio below this is "the colour of the background":
/// #f4f4f4 on white is 1.1; the light grey (#999) of many footers is 2.8.
pub const MIN_CONTRAST: f32 = 1.3;

/// An offset beyond this (px, negative) puts text off any screen.
const OFF_SCREEN_PX: f32 = -500.0;

/// How a link looks to a reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Visible,
    /// It has no visible characters at all (empty, zero-width, no alt).
    NoText,
    /// Its text is there but hidden; why, for the reason's detail.
    Hidden(String),
}

/// How a reason names an element: `<td class="footer">`.
fn describe(element: ElementRef) -> String {
    let e = element.value();
    let mut out = format!("<{}", e.name());
    for name in ["id", "class", "style"] {
        if let Some(value) = e.attr(name) {
            let value: String = value.chars().take(60).collect();
            out.push_str(&format!(" {name}=\"{}\"", value.trim()));
        }
    }
    out.push('>');
    out
}

/// A colour attribute (`bgcolor`, `<font color>`): CSS syntax, or a bare hex
/// code as HTML's legacy colour parsing takes it.
fn attribute_color(value: &str) -> Option<Rgba> {
    let value = value.trim();
    let css = if value.len() >= 3 && value.chars().all(|c| c.is_ascii_hexdigit()) {
        format!("color:#{value}")
    } else {
        format!("color:{value}")
    };
    match css::inline(&css).first()?.property {
        Property::Color(Paint::Color(c)) => Some(c),
        _ => None,
    }
}

/// The presentational hints of an element's attributes (HTML §15.3): below
/// every author rule.
fn hints(element: ElementRef) -> Vec<Declaration> {
    let e = element.value();
    let mut out = Vec::new();
    let mut push = |property| {
        out.push(Declaration {
            property,
            important: false,
        })
    };
    if e.attr("hidden").is_some() {
        push(Property::DisplayNone(true));
    }
    if let Some(c) = e.attr("bgcolor").and_then(attribute_color) {
        push(Property::Background(Background::Color(c)));
    }
    if e.attr("background").is_some_and(|b| !b.trim().is_empty()) {
        push(Property::Background(Background::Image));
    }
    let color_attr = match e.name() {
        "font" => e.attr("color"),
        "body" => e.attr("text"),
        _ => None,
    };
    if let Some(c) = color_attr.and_then(attribute_color) {
        push(Property::Color(Paint::Color(c)));
    }
    if e.name() == "font" {
        // <font size=1..7> (HTML §15.3.4), relative +n/-n from 3.
        if let Some(size) = e.attr("size").map(str::trim) {
            let n = match size.strip_prefix('+').or(size.strip_prefix('-')) {
                Some(d) => {
                    d.parse::<i32>()
                        .ok()
                        .map(|d| if size.starts_with('-') { 3 - d } else { 3 + d })
                }
                None => size.parse::<i32>().ok(),
            };
            if let Some(n) = n {
                let px = [10.0, 10.0, 13.0, 16.0, 18.0, 24.0, 32.0, 48.0][n.clamp(0, 7) as usize];
                push(Property::FontSize(FontSize::Px(px)));
            }
        }
    }
    out
}

/// Where a declaration stands in the cascade: (importance and origin,
/// specificity, source order), compared in that order.
type Priority = (u8, (u16, u16, u16), usize);

/// The declarations that apply to `element` in `view`, in cascade order:
/// the last one of each property wins.
fn cascade(doc: &Document, element: ElementRef, view: View) -> Vec<Declaration> {
    let mut found: Vec<(Priority, Declaration)> = hints(element)
        .into_iter()
        .map(|d| ((0, (0, 0, 0), 0), d))
        .collect();
    for (order, rule) in doc.rules.iter().enumerate() {
        if rule.media.as_ref().is_some_and(|m| !m.matches(view)) {
            continue;
        }
        if !rule.selector.matches(&element) {
            continue;
        }
        for d in rule.declarations.iter() {
            let level = if d.important { 3 } else { 1 };
            found.push(((level, rule.specificity, order), *d));
        }
    }
    if let Some(style) = element.value().attr("style") {
        for d in css::inline(style) {
            let level = if d.important { 4 } else { 2 };
            found.push(((level, (0, 0, 0), 0), d));
        }
    }
    found.sort_by_key(|(key, _)| *key); // stable: source order within a key
    found.into_iter().map(|(_, d)| d).collect()
}

/// The inherited state at one element, with the element that set each part.
#[derive(Clone, Copy)]
struct State<'a> {
    hidden: Option<ElementRef<'a>>,
    opacity: f32,
    faded_by: Option<ElementRef<'a>>,
    font_px: f32,
    font_by: Option<ElementRef<'a>>,
    color: Rgba,
    color_by: Option<ElementRef<'a>>,
    /// `None` over an image.
    background: Option<Rgba>,
    background_by: Option<ElementRef<'a>>,
    link_color: Rgba,
    /// The product of the `transform: scale()` and `zoom` factors above.
    scale: f32,
    scaled_by: Option<ElementRef<'a>>,
    /// `-webkit-text-fill-color`, inherited; it paints over `color`.
    text_fill: Option<(Rgba, ElementRef<'a>)>,
    /// The last element entered has a zero height or width.
    own_collapsed: bool,
}

/// What the declarations of one element say, the last of each winning.
#[derive(Default)]
struct Specified {
    display_none: bool,
    visibility: Option<Option<bool>>,
    opacity: Option<f32>,
    font: Option<FontSize>,
    color: Option<Paint>,
    background: Option<Background>,
    collapsed: [bool; 4],
    overflow_hidden: bool,
    positioned: bool,
    left: f32,
    top: f32,
    shift: f32,
    mso_hide: bool,
    text_fill: Option<Paint>,
    scale: Option<f32>,
}

impl Specified {
    fn of(declarations: &[Declaration]) -> Specified {
        let mut s = Specified::default();
        for d in declarations {
            match d.property {
                Property::DisplayNone(v) => s.display_none = v,
                Property::VisibilityHidden(v) => s.visibility = Some(v),
                Property::Opacity(v) => s.opacity = Some(v),
                Property::FontSize(v) => s.font = Some(v),
                Property::Color(v) => s.color = Some(v),
                Property::Background(v) => s.background = Some(v),
                Property::Collapsed(dimension, v) => s.collapsed[dimension as usize] = v,
                Property::OverflowHidden(v) => s.overflow_hidden = v,
                Property::Positioned(v) => s.positioned = v,
                Property::Left(v) => s.left = v,
                Property::Top(v) => s.top = v,
                Property::Shift(v) => s.shift = v,
                Property::MsoHide(v) => s.mso_hide = v,
                Property::TextFill(v) => s.text_fill = Some(v),
                Property::Scale(v) => s.scale = Some(v),
            }
        }
        s
    }
}

const DIMENSIONS: [Dimension; 4] = [
    Dimension::Height,
    Dimension::MaxHeight,
    Dimension::Width,
    Dimension::MaxWidth,
];

/// Carries `state` into `element`, or says why nothing in it is shown.
fn enter<'a>(
    doc: &Document,
    element: ElementRef<'a>,
    state: &mut State<'a>,
    view: View,
) -> Result<(), String> {
    let name = element.value().name();
    if matches!(name, "template" | "noscript" | "head") {
        return Err(format!(
            "it is inside <{name}>, which mail clients do not show"
        ));
    }
    let s = Specified::of(&cascade(doc, element, view));
    let what = || describe(element);
    if s.display_none {
        return Err(format!("display:none on {}", what()));
    }
    if s.mso_hide && view.outlook {
        return Err(format!("mso-hide:all on {} hides it in Outlook", what()));
    }
    if s.overflow_hidden {
        if let Some(d) = DIMENSIONS.iter().find(|d| s.collapsed[**d as usize]) {
            return Err(format!("{}:0 with overflow:hidden on {}", d.name(), what()));
        }
    }
    state.own_collapsed = s.collapsed.iter().any(|c| *c);
    if (s.positioned && s.left.min(s.top) <= OFF_SCREEN_PX) || s.shift <= OFF_SCREEN_PX {
        return Err(format!("{} moves it off the screen", what()));
    }
    if let Some(v) = s.visibility {
        state.hidden = match v {
            Some(true) => Some(element),
            Some(false) => None,
            None => state.hidden,
        };
    }
    if let Some(o) = s.opacity {
        state.opacity *= o;
        if o < 1.0 {
            state.faded_by = Some(element);
        }
    }
    if let Some(f) = s.font {
        state.font_px = match f {
            FontSize::Px(px) => px,
            FontSize::Parent(factor) => state.font_px * factor,
            FontSize::Root(factor) => 16.0 * factor,
        };
        state.font_by = Some(element);
    }
    if name == "body" {
        if let Some(c) = element.value().attr("link").and_then(attribute_color) {
            state.link_color = c;
        }
    }
    match s.color {
        Some(Paint::Color(c)) => {
            state.color = c;
            state.color_by = Some(element);
        }
        Some(Paint::Inherit) => {}
        // Browsers' default sheet colours links; it beats inheritance.
        None if name == "a" => {
            state.color = state.link_color;
            state.color_by = Some(element);
        }
        None => {}
    }
    if let Some(Paint::Color(c)) = s.text_fill {
        state.text_fill = Some((c, element));
    }
    // Drawn at a fraction of its size: the text is that much smaller.
    if let Some(factor) = s.scale {
        state.scale *= factor;
        if factor < 1.0 {
            state.scaled_by = Some(element);
        }
    }
    match s.background {
        Some(Background::Color(c)) => {
            state.background = state.background.map(|below| c.over(below)).or(
                // over an image, an opaque colour still gives a known ground
                (c.a >= 1.0).then_some(c),
            );
            state.background_by = Some(element);
        }
        Some(Background::Image) => {
            state.background = None;
            state.background_by = Some(element);
        }
        Some(Background::Transparent) | None => {}
    }
    Ok(())
}

/// The elements from the root down to `element`, itself last.
fn chain(element: ElementRef) -> Vec<ElementRef> {
    let mut chain: Vec<ElementRef> = element.ancestors().filter_map(ElementRef::wrap).collect();
    chain.reverse();
    chain.push(element);
    chain
}

/// Whether `element` (holding text, or an image when `image`) is shown.
fn shown(doc: &Document, element: ElementRef, image: bool, view: View) -> Result<(), String> {
    let mut state = State {
        hidden: None,
        opacity: 1.0,
        faded_by: None,
        font_px: 16.0,
        font_by: None,
        color: Rgba::BLACK,
        color_by: None,
        background: Some(Rgba::WHITE),
        background_by: None,
        link_color: Rgba::LINK,
        text_fill: None,
        scale: 1.0,
        scaled_by: None,
        own_collapsed: false,
    };
    let path = chain(element);
    for (i, el) in path.iter().enumerate() {
        // A closed <details> shows only its <summary>.
        if el.value().name() == "details" && el.value().attr("open").is_none() {
            let into_summary = path
                .get(i + 1)
                .is_some_and(|next| next.value().name() == "summary");
            if !into_summary {
                return Err(format!("it is inside a closed {}", describe(*el)));
            }
        }
        enter(doc, *el, &mut state, view)?;
    }
    let by = |e: Option<ElementRef>| e.map_or_else(|| "the document".to_string(), describe);
    if let Some(e) = state.hidden {
        return Err(format!("visibility:hidden on {}", describe(e)));
    }
    if state.opacity < 0.1 {
        return Err(format!(
            "opacity:{} from {}",
            state.opacity,
            by(state.faded_by)
        ));
    }
    if image {
        let size = |name: &str| {
            element
                .value()
                .attr(name)
                .and_then(|v| v.trim().trim_end_matches("px").parse::<f32>().ok())
        };
        let tiny = [size("width"), size("height")]
            .into_iter()
            .flatten()
            .any(|px| px < 2.0);
        if tiny || state.own_collapsed {
            return Err(format!(
                "the image {} is too small to see",
                describe(element)
            ));
        }
        return Ok(());
    }
    if state.scale < 0.5 {
        return Err(format!(
            "it is drawn at {}% of its size by {}",
            (state.scale * 100.0).round(),
            by(state.scaled_by)
        ));
    }
    if state.font_px * state.scale < MIN_FONT_PX {
        return Err(format!(
            "font-size {}px from {} (a readable text is at least {MIN_FONT_PX}px)",
            (state.font_px * 10.0).round() / 10.0,
            by(state.font_by)
        ));
    }
    if let Some((fill, by)) = state.text_fill {
        state.color = fill;
        state.color_by = Some(by);
    }
    if state.color.a < 0.1 {
        return Err(format!(
            "a transparent text colour from {}",
            by(state.color_by)
        ));
    }
    if let Some(background) = state.background {
        let text = state.color.over(background);
        if text.contrast(background) < MIN_CONTRAST {
            return Err(format!(
                "its text colour {} from {} is (almost) the background colour {} of {}",
                text.hex(),
                by(state.color_by),
                background.hex(),
                by(state.background_by)
            ));
        }
    }
    Ok(())
}

/// The views a document must be judged in: a phone and dark mode only
/// where its sheet has media rules.
pub fn views(doc: &Document) -> &'static [View] {
    if doc.rules.iter().any(|r| r.media.is_some()) {
        &css::VIEWS[..]
    } else {
        &css::VIEWS[..1]
    }
}

/// What of the link `a` a reader sees in `view`.
pub fn link_in(doc: &Document, a: ElementRef, view: View) -> Seen {
    // What would show: text nodes with visible characters, images with alt.
    let mut items: Vec<(ElementRef, bool, &str)> = Vec::new();
    for node in a.descendants() {
        if let Some(text) = node.value().as_text() {
            if has_visible(text) {
                if let Some(parent) = node.parent().and_then(ElementRef::wrap) {
                    items.push((parent, false, text));
                }
            }
        } else if let Some(img) = ElementRef::wrap(node).filter(|e| e.value().name() == "img") {
            if let Some(alt) = img.value().attr("alt").filter(|alt| has_visible(alt)) {
                items.push((img, true, alt));
            }
        }
    }
    if items.is_empty() {
        return Seen::NoText;
    }
    let mut visible = String::new();
    let mut why = None;
    for (element, image, text) in &items {
        match shown(doc, *element, *image, view) {
            Ok(()) => visible.push_str(text),
            Err(reason) => {
                why.get_or_insert(reason);
            }
        }
    }
    // A dot or a dash left visible is not an instruction anyone reads.
    if !visible.chars().any(char::is_alphanumeric) {
        let why =
            why.unwrap_or_else(|| format!("only \"{}\" of its text can be seen", visible.trim()));
        return Seen::Hidden(format!("{why}{}", view.name));
    }
    Seen::Visible
}
