//! How the package's errors become Python exceptions.
//!
//! Every failure (a gRPC status from a node, a transport failure, a bad setting) is an
//! error of the client library ([`mcp_client::Error`]), classified there into an
//! [`ErrorKind`]. This module only raises it: [`ClientError`] wraps it so that `?` turns it
//! into a `PyErr`, and the Python classes live in `mcp_rust/errors.py`, whose
//! `_from_native` picks the subclass for a kind's word. Keeping the class hierarchy in
//! Python lets the exceptions subclass both `MCPError` and the matching builtin
//! (`TimeoutError`, `ConnectionError`, `ValueError`, ...).

use std::ops::{Deref, DerefMut};

use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;

pub use mcp_client::{ErrorKind, JsonRpcError};

/// A client-library error on its way to Python (fields through `Deref`).
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct ClientError(pub mcp_client::Error);

impl Deref for ClientError {
    type Target = mcp_client::Error;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for ClientError {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<mcp_client::Error> for ClientError {
    fn from(err: mcp_client::Error) -> Self {
        Self(err)
    }
}

impl ClientError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self(mcp_client::Error::new(kind, message))
    }

    /// A configuration error about `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self(mcp_client::Error::config(field, message))
    }

    /// The Python exception for this error (`mcp_rust.errors._from_native`).
    pub fn to_pyerr(&self, py: Python<'_>) -> PyErr {
        match self.build_exception(py) {
            Ok(err) => err,
            // The package's Python half is missing (the native module imported alone):
            // still raise something that says what happened.
            Err(import_error) => {
                let err = pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "[{}] {}",
                    self.kind.as_str(),
                    self.message
                ));
                err.set_cause(py, Some(import_error));
                err
            }
        }
    }

    fn build_exception(&self, py: Python<'_>) -> PyResult<PyErr> {
        let factory = py.import("mcp_rust.errors")?.getattr("_from_native")?;
        let (code, rpc_message, rpc_json) = match &self.jsonrpc {
            Some(e) => (Some(e.code), Some(e.message.clone()), Some(e.json.clone())),
            None => (None, None, None),
        };
        let exception = factory.call1((
            self.kind.as_str(),
            self.message.as_str(),
            self.field.as_deref(),
            code,
            rpc_message,
            rpc_json,
            self.retry_after_ms,
        ))?;
        Ok(PyErr::from_value(exception))
    }

    /// Converts with the GIL taken for the moment it needs (futures finish without it).
    pub fn into_pyerr(self) -> PyErr {
        Python::attach(|py| self.to_pyerr(py))
    }
}

impl From<ClientError> for PyErr {
    fn from(err: ClientError) -> Self {
        err.into_pyerr()
    }
}
