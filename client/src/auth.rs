//! The credentials a request carries: today the admin token as `authorization: Bearer`.

use tonic::metadata::{Ascii, MetadataMap, MetadataValue};

use crate::error::{Error, ErrorKind};

/// A credential, ready to attach to requests. Its `Debug` never shows the secret.
#[derive(Clone, Default)]
pub struct Credentials {
    authorization: Option<MetadataValue<Ascii>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.authorization.is_some())
            .finish()
    }
}

impl Credentials {
    /// Credentials for `token`; `None` or an empty token means none.
    pub fn bearer(token: Option<&str>) -> Result<Self, Error> {
        let authorization = match token.filter(|t| !t.is_empty()) {
            Some(token) => Some(MetadataValue::try_from(format!("Bearer {token}")).map_err(
                |_| {
                    Error::new(
                        ErrorKind::Config,
                        "the admin token contains characters not allowed in a header",
                    )
                    .with_field("admin_token")
                },
            )?),
            None => None,
        };
        Ok(Self { authorization })
    }

    /// True if these credentials carry a token.
    pub fn is_set(&self) -> bool {
        self.authorization.is_some()
    }

    /// Adds the credentials to a request's metadata.
    pub fn apply(&self, metadata: &mut MetadataMap) {
        if let Some(value) = &self.authorization {
            metadata.insert(mcp_proto::AUTHORIZATION, value.clone());
        }
    }

    /// `message` as a request carrying these credentials.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        self.apply(request.metadata_mut());
        request
    }
}

impl tonic::service::Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        self.apply(request.metadata_mut());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_token_and_debug_hides_it() {
        let credentials = Credentials::bearer(Some("s3cret")).expect("valid token");
        let request = credentials.request(());
        assert_eq!(
            request
                .metadata()
                .get(mcp_proto::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            Some("Bearer s3cret")
        );
        assert!(!format!("{credentials:?}").contains("s3cret"));
    }

    #[test]
    fn no_token_adds_nothing() {
        for token in [None, Some("")] {
            let credentials = Credentials::bearer(token).expect("no token");
            assert!(!credentials.is_set());
            assert!(credentials
                .request(())
                .metadata()
                .get(mcp_proto::AUTHORIZATION)
                .is_none());
        }
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_a_config_error() {
        let refused = Credentials::bearer(Some("line\nbreak")).expect_err("refused");
        assert_eq!(refused.kind, ErrorKind::Config);
        assert_eq!(refused.field.as_deref(), Some("admin_token"));
    }
}
