//! The clap value parser of the `BOTTLESYNC_*` settings. It trims the
//! text, takes an empty value as the flag's default (Terraform sets a
//! variable it has no value for to ""), and names the variable in its
//! error, as a startup error of the CLI or of a Lambda.

use std::ffi::OsStr;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Arg, Command};

/// One setting's parser: the text (trimmed, never empty) to its value.
#[derive(Clone, Copy)]
pub struct Setting<T>(pub fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Setting<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        let name = arg.map_or_else(|| "a setting".to_string(), setting_name);
        let mut text = value.to_string_lossy().trim().to_string();
        if text.is_empty()
            && let Some(default) = arg.and_then(|a| a.get_default_values().first())
        {
            text = default.to_string_lossy().into_owned();
        }
        (self.0)(&text).map_err(|problem| {
            cmd.clone().error(
                ErrorKind::ValueValidation,
                format!("invalid setting {name}: {problem}"),
            )
        })
    }
}

/// The variable an operator sets (`BOTTLESYNC_*`), else the flag.
fn setting_name(arg: &Arg) -> String {
    match (arg.get_env(), arg.get_long()) {
        (Some(env), _) => env.to_string_lossy().into_owned(),
        (None, Some(long)) => format!("--{long}"),
        (None, None) => arg.get_id().to_string(),
    }
}

/// The problem of a core error, without its "invalid setting NAME" (the
/// parser names the setting itself).
pub fn problem_of(error: &bottlesync_core::Error) -> String {
    match error {
        bottlesync_core::Error::Config { problem, .. } => problem.clone(),
        other => other.to_string(),
    }
}
