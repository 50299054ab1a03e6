//! Per-request context: who is calling and how the request wants to be handled.

use std::sync::Mutex;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

pub const GROUP_MASTERS: &str = "system:masters";
/// oxivirt's own components (controllers, node agents): the only creators of Pods.
pub const GROUP_COMPONENTS: &str = "system:oxivirt-components";

impl UserInfo {
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == GROUP_MASTERS)
    }

    pub fn is_component(&self) -> bool {
        self.groups.iter().any(|g| g == GROUP_COMPONENTS)
    }

    /// The identity in-process controllers act as.
    pub fn system(component: &str) -> Self {
        UserInfo {
            name: format!("system:oxivirt:{component}"),
            groups: vec![
                GROUP_COMPONENTS.into(),
                GROUP_MASTERS.into(),
                "system:authenticated".into(),
            ],
        }
    }
}

/// `fieldValidation`: what to do with unknown or duplicate fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> Result<Self, crate::error::ApiError> {
        match s {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(crate::error::ApiError::BadRequest(format!(
                "fieldValidation must be one of Ignore, Warn, Strict; got {other:?}"
            ))),
        }
    }
}

/// Options shared by every mutating request.
#[derive(Debug)]
pub struct RequestCtx {
    pub user: UserInfo,
    pub dry_run: bool,
    pub field_manager: String,
    pub field_validation: FieldValidation,
    /// `Warning` headers to send back (`299 - "text"`).
    pub warnings: Mutex<Vec<String>>,
    /// Server-side apply already recorded field ownership for this write.
    pub applying: bool,
}

impl RequestCtx {
    pub fn new(user: UserInfo) -> Self {
        RequestCtx {
            user,
            dry_run: false,
            field_manager: String::new(),
            field_validation: FieldValidation::Warn,
            warnings: Mutex::new(Vec::new()),
            applying: false,
        }
    }

    pub fn warn(&self, text: String) {
        let mut w = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if !w.contains(&text) {
            w.push(text);
        }
    }

    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The manager recorded in managedFields.
    pub fn manager(&self) -> &str {
        if self.field_manager.is_empty() {
            "unknown"
        } else {
            &self.field_manager
        }
    }
}
