//! Structured flag values: `--flag key:value,key:value`.
//!
//! Many `create` flags take a list of parameters (`--volume-containerdisk
//! src:quay.io/img:tag,name:root,bootorder:1`). [`Params`] splits such a value, hands out
//! typed parameters one at a time, and reports what is left over as unknown, with
//! upstream's messages (`params may not be empty`, `unknown param(s): foo:bar`).

use rand::Rng;

use crate::error::{Error, Result};
use crate::quantity;

/// The parameters of one flag occurrence, in the order given (a repeated key keeps its
/// last value, as upstream's map does).
#[derive(Debug)]
pub(crate) struct Params {
    flag: &'static str,
    entries: Vec<(String, String)>,
}

impl Params {
    /// Splits `text` (`key:value,key:value`) given to `--flag`.
    pub(crate) fn parse(flag: &'static str, text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(Error::flag(flag, "params may not be empty"));
        }
        let mut entries: Vec<(String, String)> = Vec::new();
        for param in text.split(',') {
            let Some((key, value)) = param.split_once(':') else {
                return Err(Error::flag(
                    flag,
                    format!("params need to have at least one colon: {param}"),
                ));
            };
            entries.retain(|(existing, _)| existing != key);
            entries.push((key.to_owned(), value.to_owned()));
        }
        Ok(Params { flag, entries })
    }

    /// The flag these parameters belong to.
    pub(crate) fn flag(&self) -> &'static str {
        self.flag
    }

    /// Removes and returns a string parameter.
    pub(crate) fn take(&mut self, key: &str) -> Option<String> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    /// Removes a string parameter, treating an empty value as absent (as upstream does for
    /// string fields, whose zero value is the empty string).
    pub(crate) fn take_nonempty(&mut self, key: &str) -> Option<String> {
        self.take(key).filter(|value| !value.is_empty())
    }

    /// Removes and parses an unsigned integer parameter such as `bootorder`.
    pub(crate) fn take_uint(&mut self, key: &str) -> Result<Option<u32>> {
        match self.take(key) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                Error::flag(
                    self.flag,
                    format!("failed to parse param \"{key}\": invalid unsigned integer {text:?}"),
                )
            }),
        }
    }

    /// Removes and parses a quantity parameter such as `size`, returning its canonical form.
    pub(crate) fn take_quantity(&mut self, key: &str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(text) => quantity::canonical(&text).map(Some).map_err(|reason| {
                Error::flag(
                    self.flag,
                    format!("failed to parse param \"{key}\": {reason}"),
                )
            }),
        }
    }

    /// Removes a list parameter; upstream separates list items with `;`.
    pub(crate) fn take_list(&mut self, key: &str) -> Option<Vec<String>> {
        self.take(key)
            .map(|text| text.split(';').map(str::to_owned).collect())
    }

    /// Fails if any parameter was not taken.
    pub(crate) fn finish(self) -> Result<()> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let unknown: Vec<String> = self
            .entries
            .iter()
            .map(|(key, value)| format!("{key}:{value}"))
            .collect();
        Err(Error::flag(
            self.flag,
            format!("unknown param(s): {}", unknown.join(",")),
        ))
    }
}

/// Splits `prefix/name` (a namespace or kind prefix is optional).
///
/// # Errors
/// Upstream's messages: more than one slash, or an empty name.
pub(crate) fn split_prefixed_name(text: &str) -> Result<(Option<&str>, &str), String> {
    let parts: Vec<&str> = text.split('/').collect();
    let (prefix, name) = match parts.as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            return Err(format!(
                "invalid count {} of slashes in prefix/name",
                parts.len() - 1
            ))
        }
    };
    if name.is_empty() {
        return Err("name cannot be empty".to_owned());
    }
    Ok((prefix.filter(|p| !p.is_empty()), name))
}

/// The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random 5-character suffix such as `x7k2q`, as in upstream's `vm-x7k2q`.
pub(crate) fn random_suffix(rng: &mut dyn rand::RngCore) -> String {
    (0..5)
        .map(|_| char::from(SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn params_are_taken_and_leftovers_reported_in_order() {
        let mut params =
            Params::parse("volume-containerdisk", "src:img:tag,foo:1,bar:2").expect("parses");
        assert_eq!(params.take("src").as_deref(), Some("img:tag"));
        let err = params.finish().expect_err("leftovers");
        assert_eq!(
            err.to_string(),
            "failed to parse \"--volume-containerdisk\" flag: unknown param(s): foo:1,bar:2"
        );
    }

    #[test]
    fn empty_and_colonless_params_are_rejected() {
        let err = Params::parse("volume-pvc", "").expect_err("empty");
        assert!(err.to_string().ends_with("params may not be empty"));
        let err = Params::parse("volume-pvc", "src:a,b").expect_err("no colon");
        assert!(err
            .to_string()
            .ends_with("params need to have at least one colon: b"));
    }

    #[test]
    fn typed_params_name_the_param_on_error() {
        let mut params = Params::parse("volume-import", "bootorder:x,size:lots").expect("parses");
        let err = params.take_uint("bootorder").expect_err("bad uint");
        assert!(err
            .to_string()
            .contains("failed to parse param \"bootorder\""));
        let err = params.take_quantity("size").expect_err("bad size");
        assert!(err
            .to_string()
            .contains("failed to parse param \"size\": quantities must match"));
    }

    #[test]
    fn prefixed_names_split_on_one_slash() {
        assert_eq!(split_prefixed_name("ns/name"), Ok((Some("ns"), "name")));
        assert_eq!(split_prefixed_name("name"), Ok((None, "name")));
        assert_eq!(
            split_prefixed_name("a/b/c"),
            Err("invalid count 2 of slashes in prefix/name".to_owned())
        );
        assert_eq!(
            split_prefixed_name("ns/"),
            Err("name cannot be empty".to_owned())
        );
    }

    #[test]
    fn random_suffixes_use_the_kubernetes_alphabet() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let suffix = random_suffix(&mut rng);
        assert_eq!(suffix.len(), 5);
        assert!(suffix.bytes().all(|b| SUFFIX_ALPHABET.contains(&b)));
    }
}
