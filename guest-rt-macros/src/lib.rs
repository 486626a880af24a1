//! `#[test]` for guest programs, re-exported as `guest_rt::test`. A guest
//! crate has no libtest (rustc's own `#[test]` expands to it, hence "can't
//! find crate for `test`"), so a test module writes `use guest_rt::test;`
//! (the import shadows the built-in attribute) and then uses `#[test]`,
//! `#[should_panic]`, `#[should_panic(expected = "...")]`, `#[ignore]` and
//! `#[ignore = "reason"]` as with libtest.
//!
//! The function is kept (under `#[cfg(test)]`) and registered with
//! custom_test_frameworks (`#[test_case]`) as a `guest_rt::testing::Test`
//! in a module of its name, whose path is the test's name. Written with
//! `proc_macro` alone: the input is a function item, and only its outer
//! attributes, name and parameter list are looked at.

use proc_macro::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};

/// Marks a guest function as a test: see the crate's documentation.
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr, item) {
        Ok(t) => t,
        Err((span, msg)) => compile_error(span, &msg),
    }
}

/// What `#[should_panic]` asked for.
enum ShouldPanic {
    No,
    Yes,
    Expected(Literal),
}

/// The attributes the macro takes off the function.
struct Marks {
    should_panic: ShouldPanic,
    /// `#[ignore]`, with its reason if one was given.
    ignore: Option<Option<Literal>>,
}

type Error = (Span, String);

fn expand(attr: TokenStream, item: TokenStream) -> Result<TokenStream, Error> {
    if let Some(t) = attr.into_iter().next() {
        return Err((t.span(), "#[test] takes no arguments".into()));
    }
    let mut tokens = item.into_iter().peekable();
    let mut kept: Vec<TokenTree> = Vec::new();
    let mut marks = Marks {
        should_panic: ShouldPanic::No,
        ignore: None,
    };
    // outer attributes: `#` then `[...]`
    while let Some(TokenTree::Punct(p)) = tokens.peek() {
        if p.as_char() != '#' {
            break;
        }
        let hash = tokens.next().expect("peeked");
        let Some(TokenTree::Group(g)) = tokens.next() else {
            return Err((hash.span(), "expected an attribute after `#`".into()));
        };
        if !take_mark(&g, &mut marks)? {
            kept.push(hash);
            kept.push(TokenTree::Group(g));
        }
    }
    let rest: Vec<TokenTree> = tokens.collect();
    let name = fn_name(&rest)?;
    let mut out = TokenStream::new();
    out.extend(cfg_test());
    out.extend(kept);
    out.extend(rest);
    out.extend(registration(&name, &marks));
    Ok(out)
}

/// Takes `#[should_panic ...]` or `#[ignore ...]` into `marks` (true), or
/// leaves another attribute alone (false).
fn take_mark(attr: &Group, marks: &mut Marks) -> Result<bool, Error> {
    let mut t = attr.stream().into_iter();
    let Some(TokenTree::Ident(id)) = t.next() else {
        return Ok(false);
    };
    let rest: Vec<TokenTree> = t.collect();
    match id.to_string().as_str() {
        "should_panic" => {
            marks.should_panic = match rest.as_slice() {
                [] => ShouldPanic::Yes,
                // #[should_panic = "..."]
                [TokenTree::Punct(eq), TokenTree::Literal(l)] if eq.as_char() == '=' => {
                    ShouldPanic::Expected(l.clone())
                }
                // #[should_panic(expected = "...")]
                [TokenTree::Group(g)] if g.delimiter() == Delimiter::Parenthesis => {
                    let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                    match inner.as_slice() {
                        [
                            TokenTree::Ident(k),
                            TokenTree::Punct(eq),
                            TokenTree::Literal(l),
                        ] if k.to_string() == "expected" && eq.as_char() == '=' => {
                            ShouldPanic::Expected(l.clone())
                        }
                        _ => {
                            return Err((
                                g.span(),
                                "write #[should_panic], #[should_panic = \"text\"] or #[should_panic(expected = \"text\")]".into(),
                            ));
                        }
                    }
                }
                _ => {
                    return Err((
                        id.span(),
                        "write #[should_panic], #[should_panic = \"text\"] or #[should_panic(expected = \"text\")]".into(),
                    ));
                }
            };
            Ok(true)
        }
        "ignore" => {
            marks.ignore = Some(match rest.as_slice() {
                [] => None,
                [TokenTree::Punct(eq), TokenTree::Literal(l)] if eq.as_char() == '=' => {
                    Some(l.clone())
                }
                _ => {
                    return Err((
                        id.span(),
                        "write #[ignore] or #[ignore = \"reason\"]".into(),
                    ));
                }
            });
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The function's name; its parameter list must be empty.
fn fn_name(item: &[TokenTree]) -> Result<Ident, Error> {
    let at = item
        .iter()
        .position(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "fn"))
        .ok_or_else(|| (Span::call_site(), "#[test] goes on a function".to_string()))?;
    for t in &item[..at] {
        if let TokenTree::Ident(i) = t
            && (i.to_string() == "async" || i.to_string() == "unsafe")
        {
            return Err((
                i.span(),
                format!("a guest #[test] function cannot be `{i}`"),
            ));
        }
    }
    let Some(TokenTree::Ident(name)) = item.get(at + 1) else {
        return Err((item[at].span(), "expected the function's name".into()));
    };
    match item.get(at + 2) {
        Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis => {
            if !g.stream().is_empty() {
                return Err((g.span(), "a #[test] function takes no arguments".into()));
            }
        }
        Some(t) => {
            return Err((
                t.span(),
                "a #[test] function has no generic parameters".into(),
            ));
        }
        None => return Err((name.span(), "expected `()` after the name".into())),
    }
    Ok(name.clone())
}

fn ident(s: &str) -> TokenTree {
    TokenTree::Ident(Ident::new(s, Span::call_site()))
}

fn punct(c: char) -> TokenTree {
    TokenTree::Punct(Punct::new(c, Spacing::Alone))
}

fn group(d: Delimiter, inner: TokenStream) -> TokenTree {
    TokenTree::Group(Group::new(d, inner))
}

/// `#[cfg(test)]`
fn cfg_test() -> TokenStream {
    attribute("cfg(test)")
}

fn attribute(body: &str) -> TokenStream {
    let inner: TokenStream = body.parse().expect("a valid attribute");
    [punct('#'), group(Delimiter::Bracket, inner)]
        .into_iter()
        .collect()
}

/// Rust tokens from their text (constants of this file).
fn tokens(p: &str) -> TokenStream {
    p.parse().expect("a valid path")
}

/// The module that registers the test:
///
/// ```text
/// #[cfg(test)] #[allow(non_snake_case)] #[doc(hidden)]
/// mod NAME {
///     #[test_case]
///     static TEST: ::guest_rt::testing::Test = ::guest_rt::testing::Test {
///         path: ::core::module_path!(),
///         run: || ::guest_rt::testing::TestReturn::check(super::NAME()),
///         should_panic: ..., ignore: ..., reason: ...,
///     };
/// }
/// ```
fn registration(name: &Ident, marks: &Marks) -> TokenStream {
    let should_panic = match &marks.should_panic {
        ShouldPanic::No => tokens("::guest_rt::testing::ShouldPanic::No"),
        ShouldPanic::Yes => tokens("::guest_rt::testing::ShouldPanic::Yes"),
        ShouldPanic::Expected(l) => {
            let mut t = tokens("::guest_rt::testing::ShouldPanic::Expected");
            t.extend([group(
                Delimiter::Parenthesis,
                TokenStream::from(TokenTree::Literal(l.clone())),
            )]);
            t
        }
    };
    let reason = match &marks.ignore {
        Some(Some(l)) => {
            let mut t = tokens("::core::option::Option::Some");
            t.extend([group(
                Delimiter::Parenthesis,
                TokenStream::from(TokenTree::Literal(l.clone())),
            )]);
            t
        }
        _ => tokens("::core::option::Option::None"),
    };
    let ignore = ident(if marks.ignore.is_some() {
        "true"
    } else {
        "false"
    });

    // run: || ::guest_rt::testing::TestReturn::check(super::NAME())
    let mut call = tokens("super::");
    call.extend([
        TokenTree::Ident(name.clone()),
        group(Delimiter::Parenthesis, TokenStream::new()),
    ]);
    let mut run = TokenStream::new();
    run.extend([punct('|'), punct('|')]);
    run.extend(tokens("::guest_rt::testing::TestReturn::check"));
    run.extend([group(Delimiter::Parenthesis, call)]);

    let mut fields = TokenStream::new();
    let mut field = |n: &str, v: TokenStream| {
        fields.extend([ident(n), punct(':')]);
        fields.extend(v);
        fields.extend([punct(',')]);
    };
    field("path", tokens("::core::module_path!()"));
    field("run", run);
    field("should_panic", should_panic);
    field("ignore", TokenStream::from(ignore));
    field("reason", reason);

    let mut stat = attribute("test_case");
    stat.extend(tokens(
        "static TEST: ::guest_rt::testing::Test = ::guest_rt::testing::Test",
    ));
    stat.extend([group(Delimiter::Brace, fields), punct(';')]);

    let mut out = cfg_test();
    out.extend(attribute("allow(non_snake_case)"));
    out.extend(attribute("doc(hidden)"));
    out.extend([
        ident("mod"),
        TokenTree::Ident(Ident::new(&name.to_string(), name.span())),
        group(Delimiter::Brace, stat),
    ]);
    out
}

/// `::core::compile_error!("msg");` at `span`.
fn compile_error(span: Span, msg: &str) -> TokenStream {
    let mut lit = Literal::string(msg);
    lit.set_span(span);
    let mut t = tokens("::core::compile_error!");
    let mut g = Group::new(
        Delimiter::Parenthesis,
        TokenStream::from(TokenTree::Literal(lit)),
    );
    g.set_span(span);
    t.extend([TokenTree::Group(g), punct(';')]);
    t
}
