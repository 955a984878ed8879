//! `TrafficControlStrategy` compiled for the request path: regular expressions are built once
//! when the strategy is set, so matching a request allocates nothing but what percent-decoding a
//! query value needs.

use http::HeaderMap;
use percent_encoding::percent_decode_str;
use regex::Regex;

use crate::ProxyError;

/// The largest compiled size of one condition's regular expression (bytes); bounds the cost of a
/// hostile pattern.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A gray traffic strategy: which requests go to [`crate::Group::Gray`]. The proxy's own type
/// (its owner converts its model to it), so this crate stays a generic proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficControl {
    /// Evaluated as the crate docs say: content rules first, then at most one percent rule.
    pub rules: Vec<TrafficRule>,
}

/// One rule of a [`TrafficControl`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrafficRule {
    /// That share (0–100) of the requests no content rule matched goes to gray.
    Percent {
        /// 0–100.
        percent: u32,
    },
    /// A request matching every condition goes to gray.
    Content {
        /// All must match (at least one).
        conditions: Vec<TrafficCondition>,
    },
}

/// One condition of a content rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrafficCondition {
    /// What is inspected.
    pub source: ConditionSource,
    /// The header, cookie or query parameter name (header names in any case).
    pub name: String,
    /// How the value is compared.
    pub operator: ConditionOperator,
    /// The value (a regular expression for [`ConditionOperator::Regex`]).
    pub value: String,
}

/// Where a condition reads its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionSource {
    /// An HTTP request header.
    Header,
    /// A cookie of the `Cookie` header.
    Cookie,
    /// A query-string parameter (form-decoded).
    Param,
}

/// How a condition compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionOperator {
    /// The value is equal.
    Equal,
    /// The whole value matches the regular expression.
    Regex,
}

/// What a content rule may inspect of a request.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    /// The request headers (cookies are read from `Cookie`).
    pub headers: &'a HeaderMap,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
}

/// A traffic-control strategy ready to be evaluated per request.
#[derive(Debug)]
pub(crate) struct CompiledTraffic {
    /// Content rules: a request matching every condition of any of them goes to gray.
    content: Vec<Vec<CompiledCondition>>,
    /// The percent of the remaining requests that goes to gray (0–100).
    percent: Option<u32>,
}

#[derive(Debug)]
struct CompiledCondition {
    source: ConditionSource,
    name: String,
    matcher: Matcher,
}

#[derive(Debug)]
enum Matcher {
    Equal(String),
    Regex(Regex),
}

impl Matcher {
    fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Equal(expected) => value == expected,
            Matcher::Regex(re) => re.is_match(value),
        }
    }
}

impl CompiledTraffic {
    /// Compiles `control`, rejecting what cannot be honoured: a percent over 100, more than one
    /// percent rule, a content rule without conditions, a condition without a name, an invalid
    /// regular expression.
    pub(crate) fn compile(control: &TrafficControl) -> Result<CompiledTraffic, ProxyError> {
        let mut content = Vec::new();
        let mut percent = None;
        for (index, rule) in control.rules.iter().enumerate() {
            match rule {
                TrafficRule::Percent { percent: p } => {
                    if *p > 100 {
                        return Err(ProxyError::InvalidTraffic(format!(
                            "rules[{index}].percent is {p}; it must be 0–100"
                        )));
                    }
                    if percent.replace(*p).is_some() {
                        return Err(ProxyError::InvalidTraffic(format!(
                            "rules[{index}] is a second percent rule; at most one is allowed"
                        )));
                    }
                }
                TrafficRule::Content { conditions } => {
                    if conditions.is_empty() {
                        return Err(ProxyError::InvalidTraffic(format!(
                            "rules[{index}].conditions is empty; a content rule needs at least one condition"
                        )));
                    }
                    let compiled = conditions
                        .iter()
                        .enumerate()
                        .map(|(c, condition)| compile_condition(index, c, condition))
                        .collect::<Result<Vec<_>, _>>()?;
                    content.push(compiled);
                }
            }
        }
        Ok(CompiledTraffic { content, percent })
    }

    /// Whether any content rule matches `request` (every condition of the rule).
    pub(crate) fn content_matches(&self, request: Option<&RequestView<'_>>) -> bool {
        let Some(request) = request else {
            return false;
        };
        self.content
            .iter()
            .any(|rule| rule.iter().all(|condition| condition.matches(request)))
    }

    /// Whether the strategy has content rules (which only an HTTP proxy can evaluate).
    pub(crate) fn has_content_rules(&self) -> bool {
        !self.content.is_empty()
    }

    /// The percent rule's share, if any.
    pub(crate) fn percent(&self) -> Option<u32> {
        self.percent
    }
}

fn compile_condition(
    rule: usize,
    index: usize,
    condition: &TrafficCondition,
) -> Result<CompiledCondition, ProxyError> {
    if condition.name.is_empty() {
        return Err(ProxyError::InvalidTraffic(format!(
            "rules[{rule}].conditions[{index}].name is empty"
        )));
    }
    let matcher = match condition.operator {
        ConditionOperator::Equal => Matcher::Equal(condition.value.clone()),
        ConditionOperator::Regex => {
            // The whole value must match, as EDAS documents for `regex`.
            let anchored = format!("^(?:{})$", condition.value);
            let re = regex::RegexBuilder::new(&anchored)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    ProxyError::InvalidTraffic(format!(
                        "rules[{rule}].conditions[{index}].value is not a valid regular expression: {e}"
                    ))
                })?;
            Matcher::Regex(re)
        }
    };
    Ok(CompiledCondition {
        source: condition.source,
        // Header names are case-insensitive; `HeaderMap` lookups take any case.
        name: condition.name.clone(),
        matcher,
    })
}

impl CompiledCondition {
    fn matches(&self, request: &RequestView<'_>) -> bool {
        match self.source {
            ConditionSource::Header => request
                .headers
                .get_all(self.name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| self.matcher.matches(v)),
            ConditionSource::Cookie => request
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .any(|(name, value)| name == self.name && self.matcher.matches(value)),
            ConditionSource::Param => request.query.is_some_and(|query| {
                query
                    .split('&')
                    .filter_map(|pair| {
                        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                        (decode(name) == self.name).then(|| decode(value))
                    })
                    .any(|value| self.matcher.matches(&value))
            }),
        }
    }
}

/// Decodes one `application/x-www-form-urlencoded` query component (`+` is a space).
fn decode(component: &str) -> String {
    let spaced = component.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn condition(
        source: ConditionSource,
        name: &str,
        operator: ConditionOperator,
        value: &str,
    ) -> TrafficCondition {
        TrafficCondition {
            source,
            name: name.into(),
            operator,
            value: value.into(),
        }
    }

    fn content(conditions: Vec<TrafficCondition>) -> CompiledTraffic {
        CompiledTraffic::compile(&TrafficControl {
            rules: vec![TrafficRule::Content { conditions }],
        })
        .unwrap()
    }

    #[test]
    fn header_cookie_and_param_conditions_match() {
        let rules = content(vec![
            condition(
                ConditionSource::Header,
                "X-Gray",
                ConditionOperator::Equal,
                "1",
            ),
            condition(
                ConditionSource::Cookie,
                "user",
                ConditionOperator::Regex,
                "vip-[0-9]+",
            ),
            condition(
                ConditionSource::Param,
                "region",
                ConditionOperator::Equal,
                "cn hz",
            ),
        ]);
        let mut headers = HeaderMap::new();
        headers.insert("x-gray", HeaderValue::from_static("1"));
        headers.insert("cookie", HeaderValue::from_static("a=b; user=vip-42"));
        let view = RequestView {
            headers: &headers,
            query: Some("x=1&region=cn+hz"),
        };
        assert!(rules.content_matches(Some(&view)));

        // Every condition must match: drop the parameter.
        let view = RequestView {
            headers: &headers,
            query: Some("region=other"),
        };
        assert!(!rules.content_matches(Some(&view)));

        // The regex must match the whole value.
        headers.insert("cookie", HeaderValue::from_static("user=vip-42x"));
        let view = RequestView {
            headers: &headers,
            query: Some("region=cn%20hz"),
        };
        assert!(!rules.content_matches(Some(&view)));
        assert!(!rules.content_matches(None));
    }

    #[test]
    fn invalid_strategies_are_rejected_with_the_field() {
        // Why `rules` are refused.
        let refused = |rules| {
            CompiledTraffic::compile(&TrafficControl { rules })
                .unwrap_err()
                .to_string()
        };
        let content = |source, name, operator, value| TrafficRule::Content {
            conditions: vec![condition(source, name, operator, value)],
        };
        let bad_regex = refused(vec![content(
            ConditionSource::Header,
            "x",
            ConditionOperator::Regex,
            "(",
        )]);
        assert!(bad_regex.contains("rules[0].conditions[0].value"));
        let two_percent = refused(vec![
            TrafficRule::Percent { percent: 10 },
            TrafficRule::Percent { percent: 20 },
        ]);
        assert!(two_percent.contains("rules[1]"));
        let over = refused(vec![TrafficRule::Percent { percent: 101 }]);
        assert!(over.contains("0–100"));
        let empty = refused(vec![TrafficRule::Content { conditions: vec![] }]);
        assert!(empty.contains("rules[0].conditions"));
        let nameless = refused(vec![content(
            ConditionSource::Cookie,
            "",
            ConditionOperator::Equal,
            "v",
        )]);
        assert!(nameless.contains("name is empty"));
    }
}
