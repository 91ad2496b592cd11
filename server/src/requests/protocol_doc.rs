//! The tables of `docs/protocol.md` the server is held to, read from the
//! document's text: the role table (§4.2) and the errors each request can
//! get (§4.7). The server's unit test of the role table and the
//! end-to-end property test (`tests/tests/e2e/property.rs`) read the
//! tables here, so that the document is parsed one way only.
//!
//! The functions take the document's text (the callers `include_str!`
//! it); a document that does not have the expected shape is a bug in the
//! document, reported as an [`DocError`] naming what is missing.

use std::collections::BTreeMap;

use hotline_proto::{ErrorCode, Role};

/// A column of the role table: a role, or a defender's session opened
/// with its panic key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// A device of this role, authenticated with its identity key.
    Role(Role),
    /// A defender device authenticated with its panic key.
    PanicKey,
}

/// What §4.7 says a request can be refused with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DocumentedErrors {
    /// Whether the request has fields that make it `MALFORMED` (step 3):
    /// the "`MALFORMED` when" cell is not a dash.
    pub malformed: bool,
    /// Every code the row names, in either cell (step 3 and step 6),
    /// once each, in the order first named.
    pub codes: Vec<ErrorCode>,
}

/// The document does not have the shape this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("docs/protocol.md: {0}")]
pub struct DocError(String);

/// The rows of the markdown table that follows the heading `heading`:
/// each row's cells, trimmed, the header row first, the separator row
/// left out.
fn table<'a>(doc: &'a str, heading: &str) -> Result<Vec<Vec<&'a str>>, DocError> {
    let section = doc
        .split(heading)
        .nth(1)
        .ok_or_else(|| DocError(format!("no section {heading:?}")))?;
    let rows: Vec<Vec<&str>> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            // The text before the first `|` and after the last one.
            cells[1..cells.len().saturating_sub(1)].to_vec()
        })
        .filter(|cells| !cells.iter().all(|c| c.chars().all(|ch| ch == '-')))
        .collect();
    if rows.len() < 2 {
        return Err(DocError(format!("no table under {heading:?}")));
    }
    Ok(rows)
}

/// The role table of §4.2: request name (the `.proto` field name) → the
/// columns marked `yes`.
pub fn role_table(doc: &str) -> Result<BTreeMap<String, Vec<Column>>, DocError> {
    let rows = table(doc, "### 4.2 The role table")?;
    let columns = rows[0][1..]
        .iter()
        .map(|r| match *r {
            "defender (panic key)" => Ok(Column::PanicKey),
            r => r
                .parse()
                .map(Column::Role)
                .map_err(|_| DocError(format!("{r:?} is not a role"))),
        })
        .collect::<Result<Vec<Column>, DocError>>()?;
    if !columns.contains(&Column::PanicKey) {
        return Err(DocError("the role table has no panic-key column".into()));
    }
    let mut out = BTreeMap::new();
    for cells in &rows[1..] {
        if cells.len() != columns.len() + 1 {
            return Err(DocError(format!("the row {:?} is not complete", cells[0])));
        }
        let name = cells[0].trim_matches('`').to_owned();
        let mut allowed = Vec::new();
        for (column, cell) in columns.iter().zip(&cells[1..]) {
            match *cell {
                "yes" => allowed.push(*column),
                "no" => {}
                other => {
                    return Err(DocError(format!(
                        "cell {other:?} of {name} is neither yes nor no"
                    )));
                }
            }
        }
        if out.insert(name.clone(), allowed).is_some() {
            return Err(DocError(format!("the row {name} twice")));
        }
    }
    Ok(out)
}

/// The codes of `hotline.v1.ErrorCode`, by the name the document writes
/// (`MALFORMED`, `NOT_FOUND`, ...).
fn code_named(word: &str) -> Option<ErrorCode> {
    (1..=64)
        .map(ErrorCode::from_u32)
        .filter(|c| !matches!(c, ErrorCode::Unknown(_)))
        .find(|c| c.as_str().eq_ignore_ascii_case(word))
}

/// Every error code named in `text`, once each.
fn codes_in(text: &str, into: &mut Vec<ErrorCode>) {
    for word in text.split(|c: char| !(c.is_ascii_uppercase() || c == '_')) {
        if let Some(code) = code_named(word)
            && !into.contains(&code)
        {
            into.push(code);
        }
    }
}

/// The table "errors, request by request" of §4.7: request name (the
/// `.proto` field name; `set-up` for the set-up stream) → what it names.
pub fn errors_per_request(doc: &str) -> Result<BTreeMap<String, DocumentedErrors>, DocError> {
    let rows = table(doc, "### 4.7 Errors, request by request")?;
    let mut out = BTreeMap::new();
    for cells in &rows[1..] {
        let [name, malformed_when, refusals] = cells[..] else {
            return Err(DocError(format!(
                "the row {:?} is not three cells",
                cells[0]
            )));
        };
        let name = if name.starts_with("set-up") {
            "set-up".to_owned()
        } else {
            name.trim_matches('`').to_owned()
        };
        let mut documented = DocumentedErrors {
            malformed: malformed_when != "—",
            codes: Vec::new(),
        };
        if documented.malformed {
            documented.codes.push(ErrorCode::Malformed);
        }
        codes_in(malformed_when, &mut documented.codes);
        codes_in(refusals, &mut documented.codes);
        if out.insert(name.clone(), documented).is_some() {
            return Err(DocError(format!("the row {name} twice")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use hotline_proto::message::RequestKind;

    use super::*;

    const DOC: &str = include_str!("../../../docs/protocol.md");

    /// Every request kind, and the set-up stream, has its row in §4.7.
    #[test]
    fn every_request_has_its_documented_errors() {
        let errors = errors_per_request(DOC).expect("the table reads");
        let mut names: Vec<&str> = RequestKind::ALL.iter().map(|k| k.name()).collect();
        names.push("set-up");
        names.sort_unstable();
        assert_eq!(errors.keys().map(String::as_str).collect::<Vec<_>>(), names);
        let setup = &errors["set-up"];
        assert!(setup.codes.contains(&ErrorCode::UnknownDevice), "{setup:?}");
        assert!(!errors["status"].malformed && errors["status"].codes.is_empty());
        let send = &errors["send_envelope"];
        for code in [
            ErrorCode::Malformed,
            ErrorCode::FailedPrecondition,
            ErrorCode::InvalidArgument,
            ErrorCode::Forbidden,
            ErrorCode::BadSignature,
            ErrorCode::NotFound,
        ] {
            assert!(send.codes.contains(&code), "{code} in {send:?}");
        }
    }

    #[test]
    fn a_table_that_is_not_there_is_an_error() {
        assert!(role_table("# nothing").is_err());
        assert!(errors_per_request("### 4.7 Errors, request by request\n\ntext").is_err());
    }
}
