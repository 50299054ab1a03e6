//! QEMU's `key=value,...` option syntax, with commas in values doubled as QEMU requires.

use std::fmt;
use std::path::Path;

use crate::error::Result;

/// An option string: a head (driver or backend name) and `key=value` pairs, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Props {
    head: String,
    pairs: Vec<(String, String)>,
}

impl Props {
    pub(crate) fn new(head: impl Into<String>) -> Self {
        Props {
            head: head.into(),
            pairs: Vec::new(),
        }
    }

    pub(crate) fn set(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.pairs.push((key.to_owned(), value.to_string()));
        self
    }

    pub(crate) fn set_opt(self, key: &str, value: Option<impl fmt::Display>) -> Self {
        match value {
            Some(value) => self.set(key, value),
            None => self,
        }
    }

    /// Sets a path value; fails for a path that is not UTF-8.
    pub(crate) fn path(self, key: &str, path: &Path) -> Result<Self> {
        let text = super::path_str(key, path)?.to_owned();
        Ok(self.set(key, text))
    }
}

impl fmt::Display for Props {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.head)?;
        for (key, value) in &self.pairs {
            write!(f, ",{key}={}", value.replace(',', ",,"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_in_values_are_doubled() {
        let props = Props::new("socket").set("id", "a").set("path", "/x,y");
        assert_eq!(props.to_string(), "socket,id=a,path=/x,,y");
    }

    #[test]
    fn absent_optional_values_are_left_out() {
        let props = Props::new("ide-hd")
            .set_opt("serial", None::<&str>)
            .set_opt("bootindex", Some(2));
        assert_eq!(props.to_string(), "ide-hd,bootindex=2");
    }
}
