//! How each release's config schema differs from the one before, as data, and the parse
//! step that applies it: a file written for one release is read by another with a
//! deprecation warning or rejected with a message naming each key and its new spelling.
//!
//! Internally there is one [`Config`] struct whose keys use release 1's spelling; every
//! rule below rewrites a release's spelling into it (or refuses the file).

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::ReleaseId;
use crate::config::Config;
use crate::error::{Error, Result};

/// One change to the config schema.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// `old` is spelled `new` from `release` on. That release still takes `old` with a
    /// deprecation warning; later releases reject it.
    Renamed {
        /// Spelling before.
        old: &'static str,
        /// Spelling from `release` on.
        new: &'static str,
        /// Release that renamed it.
        release: ReleaseId,
    },
    /// Section `old` is replaced by section `new` (same keys inside) and rejected from
    /// `release` on.
    SectionReplaced {
        /// Section before.
        old: &'static str,
        /// Section from `release` on.
        new: &'static str,
        /// Release that replaced it.
        release: ReleaseId,
    },
    /// `key` exists from `release` on; earlier releases reject it.
    Added {
        /// Dotted key or section.
        key: &'static str,
        /// First release with it.
        release: ReleaseId,
    },
    /// `key` is rejected from `release` on.
    Removed {
        /// Dotted key, in the spelling of the release before.
        key: &'static str,
        /// Release that removed it.
        release: ReleaseId,
        /// Why, for the message.
        why: &'static str,
    },
}

/// Every schema change, oldest first.
pub const CHANGES: &[Change] = &[
    Change::Renamed {
        old: "storage.trace.block.page_size_bytes",
        new: "storage.trace.block.rb1_page_size_bytes",
        release: ReleaseId::R2,
    },
    Change::Renamed {
        old: "ingester.max_memory_bytes",
        new: "ingester.max_live_bytes",
        release: ReleaseId::R2,
    },
    Change::Added {
        key: "compactor",
        release: ReleaseId::R2,
    },
    Change::Added {
        key: "storage.trace.block.version",
        release: ReleaseId::R2,
    },
    Change::Added {
        key: "storage.trace.block.parquet_row_group_size_bytes",
        release: ReleaseId::R2,
    },
    Change::Added {
        key: "storage.trace.block.parquet_dedicated_columns",
        release: ReleaseId::R2,
    },
    Change::Added {
        key: "storage.trace.blocklist_poll_stale_tenant_index",
        release: ReleaseId::R2,
    },
    Change::SectionReplaced {
        old: "ingester",
        new: "live_store",
        release: ReleaseId::R3,
    },
    Change::Removed {
        key: "storage.trace.block.rb1_page_size_bytes",
        release: ReleaseId::R3,
        why: "release 3 neither writes nor reads rb1 blocks",
    },
];

impl Change {
    /// The release the change belongs to.
    pub fn release(&self) -> ReleaseId {
        match *self {
            Change::Renamed { release, .. }
            | Change::SectionReplaced { release, .. }
            | Change::Added { release, .. }
            | Change::Removed { release, .. } => release,
        }
    }

    /// One line for `reference-backend releases`.
    pub fn describe(&self) -> String {
        match *self {
            Change::Renamed { old, new, .. } => {
                format!(
                    "renamed {old} -> {new} (old spelling accepted with a warning, rejected from the next release)"
                )
            }
            Change::SectionReplaced { old, new, .. } => {
                format!("section {old} replaced by {new} (same keys inside; {old} rejected)")
            }
            Change::Added { key, .. } => format!("added {key}"),
            Change::Removed { key, why, .. } => format!("removed {key} ({why})"),
        }
    }
}

/// A config parsed for one release.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The config, with `release` set.
    pub config: Config,
    /// Deprecation warnings (keys accepted under an old spelling).
    pub warnings: Vec<String>,
}

/// Parse and validate `text` as a config file of `release`.
pub fn parse(text: &str, release: ReleaseId) -> Result<Parsed> {
    let parse_err = |message: String| Error::ConfigParse {
        path: PathBuf::from("<inline>"),
        message,
    };
    let mut tree: Value = if text.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_saphyr::from_str(text).map_err(|e| parse_err(e.to_string()))?
    };
    if tree.is_null() {
        tree = Value::Object(Map::new());
    }
    let original = tree.clone();
    let mut warnings = Vec::new();
    let mut problems = Vec::new();
    apply(&mut tree, release, &mut warnings, &mut problems);
    if !problems.is_empty() {
        return Err(Error::ConfigInvalid(format!(
            "this config does not fit {release}:\n  - {}",
            problems.join("\n  - ")
        )));
    }
    let mut config: Config = if tree == original && !text.trim().is_empty() {
        // Nothing rewritten: parse the text itself so errors carry line and column.
        serde_saphyr::from_str(text).map_err(|e| parse_err(e.to_string()))?
    } else {
        serde_path_to_error::deserialize(tree).map_err(|e| {
            parse_err(format!(
                "{}: {}",
                display_path(&e.path().to_string(), release),
                e.inner()
            ))
        })?
    };
    config.release = release;
    config.validate().map_err(|e| match e {
        Error::ConfigInvalid(m) => Error::ConfigInvalid(translate(&m, release)),
        other => other,
    })?;
    validate_for_release(&config, release)?;
    Ok(Parsed { config, warnings })
}

fn validate_for_release(config: &Config, release: ReleaseId) -> Result<()> {
    let v = config.storage.trace.block.version.as_str();
    if v.is_empty() {
        return Ok(());
    }
    if !["rb1", "rb2"].contains(&v) {
        return Err(Error::ConfigInvalid(format!(
            "storage.trace.block.version: {v:?} is not a block format (rb1 or rb2)"
        )));
    }
    if !release.reads().contains(&v) {
        return Err(Error::ConfigInvalid(format!(
            "storage.trace.block.version: {release} cannot write {v} blocks (it reads {})",
            release.reads().join(", ")
        )));
    }
    Ok(())
}

/// Rewrite `tree` from `release`'s spelling into the internal one, collecting warnings
/// and problems.
fn apply(
    tree: &mut Value,
    release: ReleaseId,
    warnings: &mut Vec<String>,
    problems: &mut Vec<String>,
) {
    // Sections first (renames are spelled inside the internal sections), removals before
    // renames (a removed key must not be renamed into the internal spelling first).
    let rank = |c: &Change| match c {
        Change::SectionReplaced { .. } => 0,
        Change::Added { .. } => 1,
        Change::Removed { .. } => 2,
        Change::Renamed { .. } => 3,
    };
    let mut ordered: Vec<&Change> = CHANGES.iter().collect();
    ordered.sort_by_key(|c| rank(c));
    for change in ordered {
        let since = change.release();
        match *change {
            Change::SectionReplaced { old, new, .. } => {
                if release >= since {
                    if let Some(v) = get(tree, old) {
                        let keys = leaf_keys(v, old);
                        for k in keys {
                            let suffix = &k[old.len()..];
                            problems.push(format!(
                                "{k}: the {old} section was replaced by {new} in {since}; write {}",
                                display_path(
                                    &spelling_in(&format!("{old}{suffix}"), release),
                                    release
                                )
                            ));
                        }
                        if leaf_keys(v, old).is_empty() {
                            problems.push(format!(
                                "{old}: the section was replaced by {new} in {since}"
                            ));
                        }
                        // Reported once here; later rules must not report its keys again.
                        take(tree, old);
                    }
                    if let Some(v) = take(tree, new) {
                        insert(tree, old, v);
                    }
                } else if get(tree, new).is_some() {
                    problems.push(format!(
                        "{new}: no such section in {release}; it replaces {old} from {since} on"
                    ));
                }
            }
            Change::Added { key, .. } => {
                if release < since && get(tree, key).is_some() {
                    problems.push(format!(
                        "{key}: no such key in {release}; it was added in {since}"
                    ));
                }
            }
            Change::Removed { key, why, .. } => {
                if release >= since && get(tree, key).is_some() {
                    problems.push(format!(
                        "{}: removed in {since} ({why}); delete it",
                        display_path(key, release)
                    ));
                    take(tree, key);
                }
            }
            Change::Renamed { old, new, .. } => {
                let (has_old, has_new) = (get(tree, old).is_some(), get(tree, new).is_some());
                if release < since {
                    if has_new {
                        problems.push(format!(
                            "{new}: this is the spelling of {since}; {release} calls it {old}"
                        ));
                    }
                    continue;
                }
                if has_old && has_new {
                    problems.push(format!(
                        "{} and {}: the same setting given twice; keep {}",
                        display_path(old, release),
                        display_path(new, release),
                        display_path(new, release)
                    ));
                    continue;
                }
                if has_old {
                    let removed_later = CHANGES.iter().find_map(|c| match *c {
                        Change::Removed {
                            key,
                            release: r,
                            why,
                        } if key == new && r <= release => Some((r, why)),
                        _ => None,
                    });
                    if let Some((r, why)) = removed_later {
                        problems.push(format!(
                            "{}: renamed to {new} in {since} and removed in {r} ({why}); delete it",
                            display_path(old, release)
                        ));
                        take(tree, old);
                    } else if release == since {
                        warnings.push(format!(
                            "{} is deprecated: renamed to {} in {since}; the next release rejects the old spelling",
                            display_path(old, release),
                            display_path(new, release)
                        ));
                    } else {
                        problems.push(format!(
                            "{}: renamed to {} in {since}",
                            display_path(old, release),
                            display_path(new, release)
                        ));
                    }
                } else if let Some(v) = take(tree, new) {
                    insert(tree, old, v);
                }
            }
        }
    }
}

/// Render `config` in its release's spelling (for `/status/config`): renamed keys under
/// their new names, replaced sections under theirs, keys the release does not have left
/// out. Secrets are redacted by the config's serializers.
pub fn render(config: &Config) -> Result<String> {
    let release = config.release;
    let mut tree =
        serde_json::to_value(config).map_err(|e| Error::Internal(format!("render config: {e}")))?;
    for change in CHANGES {
        let since = change.release();
        match *change {
            Change::Added { key, .. } if release < since => {
                take(&mut tree, key);
            }
            Change::Renamed { old, new, .. } if release >= since => {
                if let Some(v) = take(&mut tree, old) {
                    insert(&mut tree, new, v);
                }
            }
            Change::Removed { key, .. } if release >= since => {
                take(&mut tree, key);
            }
            _ => {}
        }
    }
    for (old, new) in sections(release) {
        if let Some(v) = take(&mut tree, old) {
            insert(&mut tree, new, v);
        }
    }
    serde_saphyr::to_string(&tree).map_err(|e| Error::Internal(format!("render config: {e}")))
}

/// The renames in effect in `release`, oldest first.
fn renames(release: ReleaseId) -> impl Iterator<Item = (&'static str, &'static str)> {
    CHANGES.iter().filter_map(move |c| match *c {
        Change::Renamed {
            old,
            new,
            release: r,
        } if r <= release => Some((old, new)),
        _ => None,
    })
}

/// The section replacements in effect in `release`.
fn sections(release: ReleaseId) -> impl Iterator<Item = (&'static str, &'static str)> {
    CHANGES.iter().filter_map(move |c| match *c {
        Change::SectionReplaced {
            old,
            new,
            release: r,
        } if r <= release => Some((old, new)),
        _ => None,
    })
}

/// How `release` spells the internal dotted key `internal` (renames and sections applied).
pub fn key_name(internal: &str, release: ReleaseId) -> String {
    display_path(&spelling_in(internal, release), release)
}

/// Rewrite internal key names in a validation message into `release`'s spelling.
fn translate(message: &str, release: ReleaseId) -> String {
    let mut m = message.to_owned();
    for (old, new) in renames(release) {
        let o = old.rsplit_once('.').map_or(old, |(_, o)| o);
        let n = new.rsplit_once('.').map_or(new, |(_, n)| n);
        m = replace_word(&m, o, n);
    }
    for (old, new) in sections(release) {
        m = m.replace(&format!("{old}."), &format!("{new}."));
    }
    m
}

/// Replace `from` where it stands as a whole word (not inside a longer identifier).
fn replace_word(text: &str, from: &str, to: &str) -> String {
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let before = out.chars().last().or_else(|| rest[..i].chars().last());
        let before = if i > 0 {
            rest[..i].chars().last()
        } else {
            before
        };
        let after = rest[i + from.len()..].chars().next();
        out.push_str(&rest[..i]);
        out.push_str(if ident(before) || ident(after) {
            from
        } else {
            to
        });
        rest = &rest[i + from.len()..];
    }
    out.push_str(rest);
    out
}

/// How `release` spells the internal key `path` (renames applied, sections not).
fn spelling_in(path: &str, release: ReleaseId) -> String {
    let mut p = path.to_owned();
    for (old, new) in renames(release) {
        if p == old {
            p = new.to_owned();
        }
    }
    p
}

/// Show an internal path in `release`'s section names.
fn display_path(path: &str, release: ReleaseId) -> String {
    let mut p = path.to_owned();
    for (old, new) in sections(release) {
        if p == old || p.starts_with(&format!("{old}.")) {
            p = format!("{new}{}", &p[old.len()..]);
        }
    }
    p
}

fn get<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(tree, |v, k| v.as_object()?.get(k))
}

fn take(tree: &mut Value, path: &str) -> Option<Value> {
    let (parent, last) = match path.rsplit_once('.') {
        Some((p, l)) => (p, l),
        None => return tree.as_object_mut()?.remove(path),
    };
    let mut v = tree;
    for k in parent.split('.') {
        v = v.as_object_mut()?.get_mut(k)?;
    }
    v.as_object_mut()?.remove(last)
}

fn insert(tree: &mut Value, path: &str, value: Value) {
    let mut v = tree;
    let mut parts = path.split('.').peekable();
    while let Some(k) = parts.next() {
        let Some(obj) = v.as_object_mut() else { return };
        if parts.peek().is_none() {
            obj.insert(k.to_owned(), value);
            return;
        }
        v = obj
            .entry(k.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

fn leaf_keys(v: &Value, prefix: &str) -> Vec<String> {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .flat_map(|(k, v)| {
                let p = format!("{prefix}.{k}");
                match v.as_object() {
                    Some(_) => leaf_keys(v, &p),
                    None => vec![p],
                }
            })
            .collect(),
        _ => Vec::new(),
    }
}
