//! The CSS that decides whether text is seen: declarations of `style`
//! attributes and the rules of `<style>` blocks, read with cssparser (the
//! tokenizer and rule/declaration grammar of Servo and Firefox).
//!
//! Only the properties that can hide text are kept, as typed values; every
//! other declaration is skipped. What cssparser does not do is evaluate media
//! queries or compute values: this file does that for the few features mail
//! uses (`max-width`, `min-width`, `prefers-color-scheme`), by hand, as no
//! crate does it without a whole browser engine.

use cssparser::{
    AtRuleParser, CowRcStr, DeclarationParser, ParseError, Parser, ParserState,
    QualifiedRuleParser, RuleBodyItemParser, RuleBodyParser, StyleSheetParser, Token,
};

/// A colour with alpha, each channel 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rgba {
    pub r: f32,
    pub g: f32,
    pub b: f32,
    pub a: f32,
}

impl Rgba {
    pub const WHITE: Rgba = Rgba::opaque(255, 255, 255);
    pub const BLACK: Rgba = Rgba::opaque(0, 0, 0);
    /// The link colour of browsers' default style sheets.
    pub const LINK: Rgba = Rgba::opaque(0, 0, 0xee);

    pub const fn opaque(r: u8, g: u8, b: u8) -> Rgba {
        Rgba {
            r: r as f32 / 255.0,
            g: g as f32 / 255.0,
            b: b as f32 / 255.0,
            a: 1.0,
        }
    }

    /// `self` painted over the opaque `below`.
    pub fn over(self, below: Rgba) -> Rgba {
        let mix = |top: f32, low: f32| top * self.a + low * (1.0 - self.a);
        Rgba {
            r: mix(self.r, below.r),
            g: mix(self.g, below.g),
            b: mix(self.b, below.b),
            a: 1.0,
        }
    }

    /// WCAG 2 relative luminance.
    fn luminance(self) -> f32 {
        let channel = |c: f32| {
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(self.r) + 0.7152 * channel(self.g) + 0.0722 * channel(self.b)
    }

    /// The WCAG 2 contrast ratio of two opaque colours: 1 for equal colours,
    /// 21 for black on white.
    pub fn contrast(self, other: Rgba) -> f32 {
        let (a, b) = (self.luminance(), other.luminance());
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }

    /// `#rrggbb`, for the reasons' details.
    pub fn hex(self) -> String {
        let byte = |c: f32| (c.clamp(0.0, 1.0) * 255.0).round() as u8;
        format!(
            "#{:02x}{:02x}{:02x}",
            byte(self.r),
            byte(self.g),
            byte(self.b)
        )
    }
}

/// A text colour as specified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Paint {
    Color(Rgba),
    /// `inherit` and `currentColor`: the parent's colour.
    Inherit,
}

/// A background as specified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Background {
    Color(Rgba),
    /// An image, whose colours are not known: no contrast is judged over it.
    Image,
    /// `transparent`, `none`: the parent's background shows.
    Transparent,
}

/// A font size as specified.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FontSize {
    Px(f32),
    /// A factor of the parent's size (`em`, `%`, `smaller`, `larger`).
    Parent(f32),
    /// A factor of the root size (`rem`).
    Root(f32),
}

/// The box dimensions that clip content together with `overflow: hidden`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Height,
    MaxHeight,
    Width,
    MaxWidth,
}

impl Dimension {
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Height => "height",
            Dimension::MaxHeight => "max-height",
            Dimension::Width => "width",
            Dimension::MaxWidth => "max-width",
        }
    }
}

/// One declaration that can hide text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Property {
    /// `display`: whether it is `none`.
    DisplayNone(bool),
    /// `visibility`: whether it is `hidden` or `collapse`; `None` is `inherit`.
    VisibilityHidden(Option<bool>),
    Opacity(f32),
    FontSize(FontSize),
    Color(Paint),
    Background(Background),
    /// A dimension: whether it is (about) zero.
    Collapsed(Dimension, bool),
    /// `overflow` (or `overflow-x`/`-y`): whether it is `hidden` or `clip`.
    OverflowHidden(bool),
    /// `position`: whether it is `absolute` or `fixed`.
    Positioned(bool),
    /// `left` in px: where a positioned box is.
    Left(f32),
    /// `top` in px.
    Top(f32),
    /// `text-indent`, `margin-left` or `margin-top` in px: how far the text
    /// is moved.
    Shift(f32),
    /// Outlook's `mso-hide`: whether it is `all`.
    MsoHide(bool),
    /// WebKit's `-webkit-text-fill-color`: paints the text over `color`.
    TextFill(Paint),
    /// A factor the text is drawn at: `transform: scale()`, `zoom`.
    Scale(f32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Declaration {
    pub property: Property,
    pub important: bool,
}

/// A `px` length from a token: `px`, `pt`, `em`/`rem` (at 16 px), and a
/// bare 0. Percentages and other units give `None`.
fn length_px(token: &Token) -> Option<f32> {
    match token {
        Token::Number { value, .. } if *value == 0.0 => Some(0.0),
        Token::Dimension { value, unit, .. } => {
            let factor = match_unit(unit)?;
            Some(value * factor)
        }
        _ => None,
    }
}

fn match_unit(unit: &str) -> Option<f32> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "px" => 1.0,
        "pt" => 4.0 / 3.0,
        "pc" => 16.0,
        "in" => 96.0,
        "cm" => 96.0 / 2.54,
        "mm" => 96.0 / 25.4,
        "em" | "rem" | "ch" | "ex" => 16.0,
        "vw" | "vh" | "vmin" | "vmax" => 8.0,
        _ => return None,
    })
}

/// The keyword sizes of CSS Fonts 4 §2.5 at a medium of 16 px.
fn font_keyword(word: &str) -> Option<FontSize> {
    Some(match word {
        "xx-small" => FontSize::Px(9.0),
        "x-small" => FontSize::Px(10.0),
        "small" => FontSize::Px(13.0),
        "medium" => FontSize::Px(16.0),
        "large" => FontSize::Px(18.0),
        "x-large" => FontSize::Px(24.0),
        "xx-large" => FontSize::Px(32.0),
        "xxx-large" => FontSize::Px(48.0),
        "smaller" => FontSize::Parent(1.0 / 1.2),
        "larger" => FontSize::Parent(1.2),
        _ => return None,
    })
}

fn font_size(token: &Token) -> Option<FontSize> {
    match token {
        Token::Percentage { unit_value, .. } => Some(FontSize::Parent(*unit_value)),
        Token::Dimension { value, unit, .. } if unit.eq_ignore_ascii_case("em") => {
            Some(FontSize::Parent(*value))
        }
        Token::Dimension { value, unit, .. } if unit.eq_ignore_ascii_case("rem") => {
            Some(FontSize::Root(*value))
        }
        Token::Ident(word) => font_keyword(&word.to_ascii_lowercase()),
        other => length_px(other).map(FontSize::Px),
    }
}

/// A number from 0 to 1 of an `rgb()` argument: 0..255 or a percentage.
fn channel(token: &Token) -> Option<f32> {
    match token {
        Token::Number { value, .. } => Some((value / 255.0).clamp(0.0, 1.0)),
        Token::Percentage { unit_value, .. } => Some(unit_value.clamp(0.0, 1.0)),
        _ => None,
    }
}

fn alpha(token: &Token) -> Option<f32> {
    match token {
        Token::Number { value, .. } => Some(value.clamp(0.0, 1.0)),
        Token::Percentage { unit_value, .. } => Some(unit_value.clamp(0.0, 1.0)),
        _ => None,
    }
}

/// A plain factor: a number or a percentage, not clamped (`zoom: 2`).
fn alpha_or_number(token: &Token) -> Option<f32> {
    match token {
        Token::Number { value, .. } => Some(value.abs()),
        Token::Percentage { unit_value, .. } => Some(unit_value.abs()),
        _ => None,
    }
}

/// The arguments of `rgb()`/`rgba()`, comma- or space-separated, with an
/// optional alpha after a comma or `/`.
fn rgb_function(input: &mut Parser) -> Option<Rgba> {
    let mut values = Vec::with_capacity(4);
    while let Ok(token) = input.next() {
        match token {
            Token::Comma | Token::Delim('/') => {}
            token => values.push(token.clone()),
        }
    }
    let r = channel(values.first()?)?;
    let g = channel(values.get(1)?)?;
    let b = channel(values.get(2)?)?;
    let a = values.get(3).map_or(Some(1.0), alpha)?;
    Some(Rgba { r, g, b, a })
}

/// A colour token: `#hex`, a named colour, `transparent`, `rgb()`/`rgba()`.
/// `None` for anything else (`hsl()` is rare in mail and then not judged).
fn color(token: &Token, input: &mut Parser) -> Option<Rgba> {
    match token {
        Token::Hash(hex) | Token::IDHash(hex) => {
            let (r, g, b, a) = cssparser::color::parse_hash_color(hex.as_bytes()).ok()?;
            Some(Rgba {
                a,
                ..Rgba::opaque(r, g, b)
            })
        }
        Token::Ident(name) if name.eq_ignore_ascii_case("transparent") => Some(Rgba {
            a: 0.0,
            ..Rgba::BLACK
        }),
        Token::Ident(name) => {
            let (r, g, b) = cssparser::color::parse_named_color(&name.to_ascii_lowercase()).ok()?;
            Some(Rgba::opaque(r, g, b))
        }
        Token::Function(name)
            if name.eq_ignore_ascii_case("rgb") || name.eq_ignore_ascii_case("rgba") =>
        {
            input
                .parse_nested_block(|inner| Ok::<_, ParseError<()>>(rgb_function(inner)))
                .ok()
                .flatten()
        }
        _ => None,
    }
}

fn ident_is(token: &Token, words: &[&str]) -> bool {
    matches!(token, Token::Ident(w) if words.iter().any(|x| w.eq_ignore_ascii_case(x)))
}

/// A text colour value: a colour, or the parent's (`inherit`,
/// `currentColor`, `unset`).
fn paint(input: &mut Parser) -> Option<Paint> {
    let t = input.next().ok()?.clone();
    if ident_is(&t, &["inherit", "currentcolor", "unset"]) {
        Some(Paint::Inherit)
    } else {
        Some(Paint::Color(color(&t, input)?))
    }
}

/// The value of `background` or `background-color`: a colour, an image, or
/// transparent.
fn background(input: &mut Parser) -> Option<Background> {
    let mut found = None;
    while let Ok(token) = input.next() {
        let token = token.clone();
        match &token {
            Token::UnquotedUrl(_) => return Some(Background::Image),
            Token::Function(f) if f.eq_ignore_ascii_case("url") || f.contains("gradient") => {
                return Some(Background::Image)
            }
            t if ident_is(t, &["none", "inherit", "initial", "unset"]) => {
                found.get_or_insert(Background::Transparent);
            }
            t => {
                if let Some(c) = color(t, input) {
                    found = Some(if c.a == 0.0 {
                        Background::Transparent
                    } else {
                        Background::Color(c)
                    });
                }
            }
        }
    }
    found
}

/// The declaration `name: value` if it is one that can hide text.
fn property<'i>(name: &str, input: &mut Parser<'i>) -> Option<Property> {
    let name = name.to_ascii_lowercase();
    fn first<'i>(input: &mut Parser<'i>) -> Option<Token<'i>> {
        input.next().ok().cloned()
    }
    Some(match name.as_str() {
        "display" => Property::DisplayNone(ident_is(&first(input)?, &["none"])),
        "visibility" => {
            let t = first(input)?;
            if ident_is(&t, &["inherit", "unset"]) {
                Property::VisibilityHidden(None)
            } else {
                Property::VisibilityHidden(Some(ident_is(&t, &["hidden", "collapse"])))
            }
        }
        "opacity" => Property::Opacity(alpha(&first(input)?)?),
        "font-size" => Property::FontSize(font_size(&first(input)?)?),
        // `font: 0/0 a`: the size is the first length or percentage, or
        // keyword size, before an optional `/line-height`.
        "font" => {
            let mut size = None;
            while let Ok(t) = input.next() {
                if let Some(s) = font_size(t) {
                    size = Some(s);
                    break;
                }
            }
            Property::FontSize(size?)
        }
        "color" => Property::Color(paint(input)?),
        "background" | "background-color" | "background-image" => {
            Property::Background(background(input)?)
        }
        "height" | "max-height" | "width" | "max-width" => {
            let dimension = match name.as_str() {
                "height" => Dimension::Height,
                "max-height" => Dimension::MaxHeight,
                "width" => Dimension::Width,
                _ => Dimension::MaxWidth,
            };
            let px = length_px(&first(input)?);
            Property::Collapsed(dimension, px.is_some_and(|p| p < 2.0))
        }
        "overflow" | "overflow-x" | "overflow-y" => {
            Property::OverflowHidden(ident_is(&first(input)?, &["hidden", "clip"]))
        }
        "position" => Property::Positioned(ident_is(&first(input)?, &["absolute", "fixed"])),
        "left" => Property::Left(length_px(&first(input)?)?),
        "top" => Property::Top(length_px(&first(input)?)?),
        "text-indent" | "margin-left" | "margin-top" => Property::Shift(length_px(&first(input)?)?),
        "mso-hide" => Property::MsoHide(ident_is(&first(input)?, &["all"])),
        "-webkit-text-fill-color" => Property::TextFill(paint(input)?),
        "zoom" => Property::Scale(alpha_or_number(&first(input)?)?),
        // `scale(0)`, `scale(0.01, 1)`: the smaller factor; other transforms
        // are taken as drawing at full size.
        "transform" => {
            let mut factor = 1.0f32;
            while let Ok(t) = input.next() {
                if matches!(t, Token::Function(f) if f.eq_ignore_ascii_case("scale")
                    || f.eq_ignore_ascii_case("scalex") || f.eq_ignore_ascii_case("scaley"))
                {
                    let least = input
                        .parse_nested_block(|inner| {
                            let mut least = f32::MAX;
                            while let Ok(t) = inner.next() {
                                if let Some(v) = alpha_or_number(t) {
                                    least = least.min(v);
                                }
                            }
                            Ok::<_, ParseError<()>>(least)
                        })
                        .unwrap_or(1.0);
                    factor = factor.min(least);
                }
            }
            Property::Scale(factor)
        }
        "filter" => {
            let mut opacity = None;
            while let Ok(t) = input.next() {
                if matches!(t, Token::Function(f) if f.eq_ignore_ascii_case("opacity")) {
                    opacity = input
                        .parse_nested_block(|i| {
                            Ok::<_, ParseError<()>>(i.next().ok().and_then(alpha))
                        })
                        .ok()
                        .flatten();
                }
            }
            Property::Opacity(opacity?)
        }
        _ => return None,
    })
}

/// The declarations of a block or a `style` attribute that can hide text.
struct Declarations;

impl<'i> DeclarationParser<'i> for Declarations {
    type Declaration = Option<Declaration>;
    type Error = ();

    fn parse_value(
        &mut self,
        name: CowRcStr<'i>,
        input: &mut Parser<'i>,
        _: &ParserState,
    ) -> Result<Self::Declaration, ParseError<()>> {
        // The value up to `!`, then cssparser's own `!important` check.
        let property = input
            .parse_until_before(cssparser::Delimiter::Bang, |i| {
                let property = property(&name, i);
                while i.next().is_ok() {} // the value's tokens not needed
                Ok::<_, ParseError<()>>(property)
            })
            .ok()
            .flatten();
        let important = input.try_parse(cssparser::parse_important).is_ok();
        while input.next().is_ok() {} // whatever follows a stray `!`
        Ok(property.map(|property| Declaration {
            property,
            important,
        }))
    }
}

impl<'i> AtRuleParser<'i> for Declarations {
    type Prelude = ();
    type AtRule = Option<Declaration>;
    type Error = ();
}

impl<'i> QualifiedRuleParser<'i> for Declarations {
    type Prelude = ();
    type QualifiedRule = Option<Declaration>;
    type Error = ();
}

impl<'i> RuleBodyItemParser<'i, Option<Declaration>, ()> for Declarations {
    fn parse_declarations(&self) -> bool {
        true
    }
    fn parse_qualified(&self) -> bool {
        false
    }
}

fn declarations_of(input: &mut Parser) -> Vec<Declaration> {
    RuleBodyParser::new(input, &mut Declarations)
        .filter_map(|d| d.ok().flatten())
        .collect()
}

/// The declarations of a `style` attribute that can hide text.
pub fn inline(style: &str) -> Vec<Declaration> {
    declarations_of(&mut Parser::new(style))
}

/// What a reader's mail client is assumed to be, for media queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// The viewport width in px.
    pub width: f32,
    pub dark: bool,
    /// Outlook on the desktop: it honours `mso-hide` and no media query.
    pub outlook: bool,
    /// How a reason names the view: "" for the plain desktop view.
    pub name: &'static str,
}

/// The views a link must be visible in: a desktop window, a phone, and a
/// desktop in dark mode. Only a sheet with media rules needs the last two.
pub const VIEWS: [View; 3] = [
    View {
        width: 800.0,
        dark: false,
        outlook: true,
        name: "",
    },
    View {
        width: 375.0,
        dark: false,
        outlook: false,
        name: " on a phone-sized screen",
    },
    View {
        width: 800.0,
        dark: true,
        outlook: false,
        name: " in dark mode",
    },
];

/// One media query of a `@media` list.
#[derive(Debug, Clone, PartialEq)]
struct MediaQuery {
    negated: bool,
    /// The media type matches a screen (`screen`, `all`, or none given).
    screen: bool,
    features: Vec<Feature>,
}

#[derive(Debug, Clone, PartialEq)]
enum Feature {
    MaxWidth(f32),
    MinWidth(f32),
    Dark(bool),
    /// A feature not evaluated here (`hover`, `-webkit-min-device-pixel-ratio`):
    /// taken as true, so that what it hides counts as hidden for someone.
    Other,
}

impl MediaQuery {
    fn matches(&self, view: View) -> bool {
        let all = self.screen
            && self.features.iter().all(|f| match f {
                Feature::MaxWidth(w) => view.width <= *w,
                Feature::MinWidth(w) => view.width >= *w,
                Feature::Dark(dark) => view.dark == *dark,
                Feature::Other => true,
            });
        all != self.negated
    }
}

/// A `@media` prelude: queries separated by commas.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Media(Vec<MediaQuery>);

impl Media {
    pub fn matches(&self, view: View) -> bool {
        self.0.iter().any(|q| q.matches(view))
    }
}

fn media_feature(input: &mut Parser) -> Feature {
    let Ok(name) = input.expect_ident().map(|n| n.to_ascii_lowercase()) else {
        return Feature::Other;
    };
    if input.expect_colon().is_err() {
        return Feature::Other;
    }
    let Ok(value) = input.next().cloned() else {
        return Feature::Other;
    };
    match name.as_str() {
        "max-width" | "max-device-width" => {
            length_px(&value).map_or(Feature::Other, Feature::MaxWidth)
        }
        "min-width" | "min-device-width" => {
            length_px(&value).map_or(Feature::Other, Feature::MinWidth)
        }
        "prefers-color-scheme" => Feature::Dark(ident_is(&value, &["dark"])),
        _ => Feature::Other,
    }
}

fn media_query(input: &mut Parser) -> MediaQuery {
    let mut query = MediaQuery {
        negated: false,
        screen: true,
        features: Vec::new(),
    };
    while let Ok(token) = input.next() {
        match token {
            Token::Ident(word) => match word.to_ascii_lowercase().as_str() {
                "not" => query.negated = true,
                "only" | "and" | "screen" | "all" => {}
                _ => query.screen = false, // print, speech, tty, ...
            },
            Token::ParenthesisBlock => {
                let feature = input
                    .parse_nested_block(|i| Ok::<_, ParseError<()>>(media_feature(i)))
                    .unwrap_or(Feature::Other);
                query.features.push(feature);
            }
            _ => {}
        }
    }
    query
}

/// A rule of a `<style>` block whose selector scraper can match.
#[derive(Debug, Clone)]
pub struct Rule {
    pub selector: scraper::Selector,
    /// (ids, classes/attributes/pseudo-classes, types), compared in order.
    pub specificity: (u16, u16, u16),
    pub media: Option<std::rc::Rc<Media>>,
    pub declarations: std::rc::Rc<[Declaration]>,
}

/// The specificity of one complex selector (Selectors 4 §17), counted from
/// its tokens: scraper's parsed selector keeps it private.
fn specificity(selector: &str) -> (u16, u16, u16) {
    let mut input = Parser::new(selector);
    let (mut ids, mut classes, mut types) = (0u16, 0u16, 0u16);
    let mut after = None::<char>; // the `.` or `:` before an identifier
    while let Ok(token) = input.next_including_whitespace() {
        match token {
            Token::IDHash(_) => ids += 1,
            Token::Delim('.') => after = Some('.'),
            Token::Colon => {
                after = Some(if after == Some(':') { '⁚' } else { ':' });
                continue;
            }
            Token::SquareBracketBlock => classes += 1,
            Token::Ident(name) => match after {
                Some('.') => classes += 1,
                Some(':')
                    if !["before", "after", "first-line", "first-letter"]
                        .iter()
                        .any(|p| name.eq_ignore_ascii_case(p)) =>
                {
                    classes += 1
                }
                Some(_) => types += 1, // a pseudo-element
                None => types += 1,
            },
            Token::Function(_) if after == Some(':') => classes += 1,
            _ => {}
        }
        if !matches!(token, Token::Delim('.')) {
            after = None;
        }
    }
    (ids, classes, types)
}

/// The rules of a style sheet, in order, @media rules flattened with their
/// query; other at-rules (@font-face, @import, @keyframes) are skipped.
struct Rules {
    media: Option<std::rc::Rc<Media>>,
}

enum Parsed {
    Rules(Vec<Rule>),
}

impl<'i> QualifiedRuleParser<'i> for Rules {
    type Prelude = Vec<(scraper::Selector, (u16, u16, u16))>;
    type QualifiedRule = Parsed;
    type Error = ();

    fn parse_prelude(&mut self, input: &mut Parser<'i>) -> Result<Self::Prelude, ParseError<()>> {
        let parts = input.parse_comma_separated(|part| {
            let start = part.position();
            while part.next().is_ok() {}
            Ok::<_, ParseError<()>>(part.slice_from(start).trim().to_string())
        })?;
        Ok(parts
            .iter()
            .filter_map(|text| {
                let selector = scraper::Selector::parse(text).ok()?;
                Some((selector, specificity(text)))
            })
            .collect())
    }

    fn parse_block(
        &mut self,
        prelude: Self::Prelude,
        _: &ParserState,
        input: &mut Parser<'i>,
    ) -> Result<Parsed, ParseError<()>> {
        let declarations: std::rc::Rc<[Declaration]> = declarations_of(input).into();
        if declarations.is_empty() {
            return Ok(Parsed::Rules(Vec::new()));
        }
        Ok(Parsed::Rules(
            prelude
                .into_iter()
                .map(|(selector, specificity)| Rule {
                    selector,
                    specificity,
                    media: self.media.clone(),
                    declarations: declarations.clone(),
                })
                .collect(),
        ))
    }
}

impl<'i> AtRuleParser<'i> for Rules {
    type Prelude = Option<Media>;
    type AtRule = Parsed;
    type Error = ();

    fn parse_prelude(
        &mut self,
        name: CowRcStr<'i>,
        input: &mut Parser<'i>,
    ) -> Result<Self::Prelude, ParseError<()>> {
        if !name.eq_ignore_ascii_case("media") {
            while input.next().is_ok() {}
            return Ok(None);
        }
        let queries = input.parse_comma_separated(|q| Ok::<_, ParseError<()>>(media_query(q)))?;
        Ok(Some(Media(queries)))
    }

    fn rule_without_block(&mut self, _: Self::Prelude, _: &ParserState) -> Result<Parsed, ()> {
        Ok(Parsed::Rules(Vec::new()))
    }

    fn parse_block(
        &mut self,
        prelude: Self::Prelude,
        _: &ParserState,
        input: &mut Parser<'i>,
    ) -> Result<Parsed, ParseError<()>> {
        let Some(media) = prelude else {
            return Ok(Parsed::Rules(Vec::new()));
        };
        // Nested @media lists are rare in mail; the innermost one is kept.
        let mut nested = Rules {
            media: Some(std::rc::Rc::new(media)),
        };
        Ok(Parsed::Rules(sheet_rules(input, &mut nested)))
    }
}

fn sheet_rules(input: &mut Parser, rules: &mut Rules) -> Vec<Rule> {
    StyleSheetParser::new(input, rules)
        .filter_map(Result::ok)
        .flat_map(|Parsed::Rules(r)| r)
        .collect()
}

/// The rules of one `<style>` block that can hide text, in source order.
pub fn sheet(css: &str) -> Vec<Rule> {
    sheet_rules(&mut Parser::new(css), &mut Rules { media: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_that_hide_are_read_with_their_priority() {
        let d = inline("color: #FFF; font: 0/0 a; display : NONE !important; margin:0 auto; background: url(x.png) #000");
        let props: Vec<_> = d.iter().map(|d| (d.property, d.important)).collect();
        assert_eq!(
            props,
            [
                (Property::Color(Paint::Color(Rgba::WHITE)), false),
                (Property::FontSize(FontSize::Px(0.0)), false),
                (Property::DisplayNone(true), true),
                (Property::Background(Background::Image), false),
            ]
        );
        assert_eq!(
            inline("color: rgba(255, 255, 255, 0.5)")[0].property,
            Property::Color(Paint::Color(Rgba {
                a: 0.5,
                ..Rgba::WHITE
            }))
        );
        assert_eq!(
            inline("font-size: 75%; max-height:0px")[..]
                .iter()
                .map(|d| d.property)
                .collect::<Vec<_>>(),
            [
                Property::FontSize(FontSize::Parent(0.75)),
                Property::Collapsed(Dimension::MaxHeight, true)
            ]
        );
        assert!(inline("garbage;;: x; {}").is_empty());
    }

    #[test]
    fn style_blocks_give_rules_with_media_and_specificity() {
        let rules = sheet(
            "@import url(x.css); p, #f .u a { color: red } .x.y{display:none}
             @media only screen and (max-width: 480px) { .m { display: none !important } }
             @media (prefers-color-scheme: dark) { .d { color: #000 } }
             @font-face { font-family: x } bad {{ } td{padding:0}",
        );
        let summary: Vec<_> = rules
            .iter()
            .map(|r| (r.specificity, r.media.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                ((0, 0, 1), false),
                ((1, 1, 1), false),
                ((0, 2, 0), false),
                ((0, 1, 0), true),
                ((0, 1, 0), true),
            ]
        );
        let phone = rules[3].media.as_ref().expect("media");
        assert!(phone.matches(VIEWS[1]) && !phone.matches(VIEWS[0]));
        let dark = rules[4].media.as_ref().expect("media");
        assert!(dark.matches(VIEWS[2]) && !dark.matches(VIEWS[0]));
    }

    #[test]
    fn contrast_is_the_wcag_ratio() {
        assert!((Rgba::BLACK.contrast(Rgba::WHITE) - 21.0).abs() < 0.01);
        assert!((Rgba::WHITE.contrast(Rgba::WHITE) - 1.0).abs() < 0.01);
        assert_eq!(Rgba::opaque(0xfe, 0xfe, 0xfe).hex(), "#fefefe");
    }
}
