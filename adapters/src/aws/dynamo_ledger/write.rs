//! Writes: update expressions and whole items with their conditions,
//! transactions and their retries.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::*;

pub(super) enum WriteKind {
    Update {
        pk: String,
        expression: &'static str,
    },
    Put {
        pk: String,
        item: Item,
    },
}

/// One write: an update expression or a whole item, with its condition.
/// Attribute names (`#x` -> `x`) are derived from the expressions; values
/// not used by them are left out (DynamoDB rejects unused ones).
pub(super) struct Write {
    pub(super) kind: WriteKind,
    pub(super) condition: Option<&'static str>,
    pub(super) values: Vec<(&'static str, AttributeValue)>,
}

pub(super) enum Written {
    Yes,
    /// The condition failed; the item as it was, when the server says.
    ConditionFailed(Option<Item>),
}

pub(super) enum Transaction {
    Committed,
    Cancelled(Vec<Reason>),
}

pub(super) struct Reason {
    /// `None` (this write was fine), `ConditionalCheckFailed`, `TransactionConflict`, ...
    pub(super) code: String,
    pub(super) item: Option<Item>,
}

impl Reason {
    /// Whether this write's condition held; `None` when it was not the
    /// condition that stopped it.
    pub(super) fn passed(&self) -> Option<bool> {
        match self.code.as_str() {
            "None" => Some(true),
            "ConditionalCheckFailed" => Some(false),
            _ => None,
        }
    }
}

impl Write {
    pub(super) fn update(pk: String, expression: &'static str) -> Self {
        Write {
            kind: WriteKind::Update { pk, expression },
            condition: None,
            values: Vec::new(),
        }
    }

    pub(super) fn put(item: Item) -> Self {
        let pk = item
            .get("pk")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        Write {
            kind: WriteKind::Put { pk, item },
            condition: None,
            values: Vec::new(),
        }
    }

    pub(super) fn condition(mut self, condition: &'static str) -> Self {
        self.condition = Some(condition);
        self
    }

    pub(super) fn value(mut self, name: &'static str, value: AttributeValue) -> Self {
        self.values.push((name, value));
        self
    }

    pub(super) fn pk(&self) -> &str {
        match &self.kind {
            WriteKind::Update { pk, .. } | WriteKind::Put { pk, .. } => pk,
        }
    }

    pub(super) fn expressions(&self) -> Vec<&'static str> {
        let mut all: Vec<&'static str> = self.condition.into_iter().collect();
        if let WriteKind::Update { expression, .. } = &self.kind {
            all.push(expression);
        }
        all
    }

    pub(super) fn names(&self) -> Option<HashMap<String, String>> {
        let names: HashMap<String, String> = tokens(&self.expressions(), '#')
            .into_iter()
            .map(|token| (token.clone(), token[1..].to_string()))
            .collect();
        (!names.is_empty()).then_some(names)
    }

    pub(super) fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        let used = tokens(&self.expressions(), ':');
        debug_assert!(
            used.iter()
                .all(|token| self.values.iter().any(|(name, _)| name == token)),
            "a value is missing for {:?}",
            self.expressions()
        );
        let values: HashMap<String, AttributeValue> = self
            .values
            .iter()
            .filter(|(name, _)| used.contains(*name))
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        (!values.is_empty()).then_some(values)
    }

    pub(super) fn into_transact_item(
        self,
        table: &str,
    ) -> std::result::Result<TransactWriteItem, aws_sdk_dynamodb::error::BuildError> {
        let names = self.names();
        let values = self.values();
        let condition = self.condition.map(str::to_string);
        Ok(match self.kind {
            WriteKind::Update { pk, expression } => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(table)
                        .key("pk", AttributeValue::S(pk))
                        .update_expression(expression)
                        .set_condition_expression(condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()?,
                )
                .build(),
            WriteKind::Put { item, .. } => TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(table)
                        .set_item(Some(item))
                        .set_condition_expression(condition)
                        .set_expression_attribute_names(names)
                        .set_expression_attribute_values(values)
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()?,
                )
                .build(),
        })
    }
}

/// The `#name` or `:value` tokens of expressions.
pub(super) fn tokens(expressions: &[&str], sigil: char) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for expression in expressions {
        let mut rest = *expression;
        while let Some(at) = rest.find(sigil) {
            let after = &rest[at + 1..];
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len > 0 {
                found.insert(format!("{sigil}{}", &after[..len]));
            }
            rest = &after[len..];
        }
    }
    found
}
