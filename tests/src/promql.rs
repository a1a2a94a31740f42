//! The metric names a PromQL expression reads, and the expressions of a
//! Grafana dashboard: for the test that every dashboard query and
//! recording rule names a metric the project really exports.
//!
//! A small lexer, not a full parser: an identifier is a metric name unless
//! it is a function (followed by `(`), a keyword or aggregation, a label
//! inside `{...}`, or a label in a `by`/`without`/`on`/`ignoring`/
//! `group_left`/`group_right` list; `{__name__="x"}` names `x`.

use std::collections::BTreeSet;

use serde_json::Value;

/// Words that are never metric names where they stand.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Number,
    Punct(char),
}

fn lex(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            let mut s = String::new();
            i += 1;
            loop {
                let Some(&d) = chars.get(i) else {
                    return Err(format!("unterminated string in {expr:?}"));
                };
                i += 1;
                if d == c {
                    break;
                }
                if d == '\\' && c != '`' {
                    if let Some(&e) = chars.get(i) {
                        s.push(e);
                        i += 1;
                    }
                } else {
                    s.push(d);
                }
            }
            tokens.push(Token::Str(s));
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // Numbers, hex, exponents and durations (5m, 1h30m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                let exponent = matches!(chars[i], 'e' | 'E');
                i += 1;
                if exponent && matches!(chars.get(i), Some('+' | '-')) {
                    i += 1;
                }
            }
            tokens.push(Token::Number);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    Ok(tokens)
}

/// The metric names `expr` reads (recording rule names included: they
/// contain a colon).
pub fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    let tokens = lex(expr)?;
    let mut names = BTreeSet::new();
    // What each open bracket is: '{' matchers, '[' range, '(' expression,
    // 'l' a label list.
    let mut open: Vec<char> = Vec::new();
    let mut label_list_next = false;
    for (k, t) in tokens.iter().enumerate() {
        let next = tokens.get(k + 1);
        let inside = open.last().copied();
        match t {
            Token::Punct(p @ ('(' | '{' | '[')) => {
                open.push(if *p == '(' && label_list_next {
                    'l'
                } else {
                    *p
                });
                label_list_next = false;
            }
            Token::Punct(p @ (')' | '}' | ']')) => {
                open.pop()
                    .ok_or_else(|| format!("unbalanced {p:?} in {expr:?}"))?;
            }
            Token::Ident(word) if inside == Some('{') && word == "__name__" => {
                // {__name__="x"} or {__name__=~"x"}: a plain name only.
                let value = tokens[k + 1..].iter().find_map(|t| match t {
                    Token::Str(s) => Some(s),
                    _ => None,
                });
                if let Some(v) = value.filter(|v| {
                    v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                }) {
                    names.insert(v.clone());
                }
            }
            // Label names in matchers and grouping lists; nothing in ranges.
            Token::Ident(_) if matches!(inside, Some('{' | 'l' | '[')) => {}
            Token::Ident(word) => {
                if LABEL_LISTS.contains(&word.as_str()) {
                    label_list_next = matches!(next, Some(Token::Punct('(')));
                } else if KEYWORDS.contains(&word.as_str())
                    || matches!(next, Some(Token::Punct('(')))
                {
                    // An operator or a function call.
                } else {
                    names.insert(word.clone());
                }
            }
            _ => {}
        }
    }
    if let Some(p) = open.last() {
        return Err(format!("unclosed {p:?} in {expr:?}"));
    }
    Ok(names)
}

/// Grafana's variables replaced by values PromQL accepts: interval
/// variables by `1m`, the others by `.+` (they stand in regex matchers).
pub fn substitute_variables(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(
            if name.starts_with("__") && name.ends_with("interval") || name == "__range" {
                "1m"
            } else {
                ".+"
            },
        );
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// A query of a dashboard: where it is and its PromQL.
#[derive(Clone, Debug, PartialEq)]
pub struct DashboardQuery {
    /// Panel title (or variable name) and refId.
    pub place: String,
    pub expr: String,
}

/// Every PromQL expression of a Grafana dashboard: panel targets (rows'
/// nested panels too) and query variables (`label_values(METRIC, label)`
/// and `query_result(EXPR)` contribute their expression).
pub fn dashboard_queries(dashboard: &Value) -> Vec<DashboardQuery> {
    let mut out = Vec::new();
    fn panels(list: &Value, out: &mut Vec<DashboardQuery>) {
        for p in list.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push(DashboardQuery {
                        place: format!("panel {title:?} {}", t["refId"].as_str().unwrap_or("?")),
                        expr: expr.to_owned(),
                    });
                }
            }
            panels(&p["panels"], out);
        }
    }
    panels(&dashboard["panels"], &mut out);
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if v["type"] != "query" {
            continue;
        }
        let query = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .unwrap_or("");
        let name = v["name"].as_str().unwrap_or("?");
        if let Some(expr) = variable_expr(query) {
            out.push(DashboardQuery {
                place: format!("variable {name}"),
                expr,
            });
        }
    }
    out
}

/// The PromQL inside a Grafana variable query, if any.
fn variable_expr(query: &str) -> Option<String> {
    let q = query.trim();
    if let Some(inner) = q
        .strip_prefix("query_result(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return Some(inner.to_owned());
    }
    let inner = q.strip_prefix("label_values(")?.strip_suffix(')')?;
    // label_values(METRIC_OR_SELECTOR, label): the last top-level comma
    // splits them; label_values(label) reads no metric.
    let mut depth = 0i32;
    let mut split = None;
    for (i, c) in inner.char_indices() {
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            ',' if depth == 0 => split = Some(i),
            _ => {}
        }
    }
    split.map(|i| inner[..i].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).unwrap().into_iter().collect()
    }

    #[test]
    fn functions_keywords_labels_and_durations_are_not_names() {
        assert_eq!(
            names(
                "1 - avg without (cpu) (sum without (mode) (rate(node_cpu_seconds_total{mode=~\"idle|iowait\"}[1m])))"
            ),
            ["node_cpu_seconds_total"]
        );
        assert_eq!(
            names(
                "histogram_quantile(0.99, sum by (le, vm) (rate(hyperwatch_vm_runqueue_latency_seconds_bucket[5m] offset 1h)))"
            ),
            ["hyperwatch_vm_runqueue_latency_seconds_bucket"]
        );
        assert_eq!(
            names(
                "rate(a_total[1m]) / on (instance, job, vm) group_left(uuid) b * 1e-6 > bool 0x1F"
            ),
            ["a_total", "b"]
        );
        assert_eq!(
            names("sum(x) or sum(y{source=\"incidents\"} == 1) * 0 unless z"),
            ["x", "y", "z"]
        );
    }

    #[test]
    fn recording_rules_and_name_matchers_count() {
        assert_eq!(
            names("instance:node_cpu_utilisation:rate1m{instance=~\"a\"} + {__name__=\"up\"}"),
            ["instance:node_cpu_utilisation:rate1m", "up"]
        );
    }

    #[test]
    fn unbalanced_expressions_are_errors() {
        assert!(metric_names("rate(x[1m]").is_err());
        assert!(metric_names("x{a=\"b}").is_err());
    }

    #[test]
    fn grafana_variables_become_promql() {
        assert_eq!(
            substitute_variables(
                "rate(x{instance=~\"$instance\",job=\"${job}\"}[$__rate_interval])"
            ),
            "rate(x{instance=~\".+\",job=\".+\"}[1m])"
        );
    }

    #[test]
    fn dashboard_targets_rows_and_variables_are_found() {
        let d = serde_json::json!({
            "panels": [
                {"title": "A", "targets": [{"refId": "A", "expr": "up"}]},
                {"title": "row", "type": "row", "panels": [
                    {"title": "B", "targets": [{"refId": "B", "expr": "node_load1"}]}
                ]}
            ],
            "templating": {"list": [
                {"name": "job", "type": "query", "query": {"query": "label_values(hyperwatch_build_info{job=\"x\"}, job)"}},
                {"name": "label", "type": "query", "query": "label_values(job)"},
                {"name": "ds", "type": "datasource", "query": "prometheus"}
            ]}
        });
        let q: Vec<String> = dashboard_queries(&d).into_iter().map(|q| q.expr).collect();
        assert_eq!(q, ["up", "node_load1", "hyperwatch_build_info{job=\"x\"}"]);
    }
}
