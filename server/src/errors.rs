//! Operation errors and their KMIP Result Reasons.
//!
//! Every error a client can see maps explicitly to a Result Reason that
//! exists in the protocol version of the request (KMIP 1.x clients break on
//! 2.x codes). The message says what the client did wrong; internal detail
//! goes to the log, never into the response.

use kmip::tables::{ResultReason, ResultStatus};
use kmip::ProtocolVersion;

/// An operation failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpError {
    /// No such object (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// Credentials did not match.
    #[error("{0}")]
    AuthenticationFailed(String),
    /// A field has a bad value.
    #[error("{0}")]
    InvalidField(String),
    /// The message is malformed.
    #[error("{0}")]
    InvalidMessage(String),
    /// Required data is missing.
    #[error("{0}")]
    MissingData(String),
    /// The operation is not implemented.
    #[error("{0}")]
    OperationNotSupported(String),
    /// A feature of the request is not implemented.
    #[error("{0}")]
    FeatureNotSupported(String),
    /// The object's lifecycle state forbids this.
    #[error("{0}")]
    WrongState(String),
    /// The operation makes no sense here.
    #[error("{0}")]
    IllegalOperation(String),
    /// Cryptography failed.
    #[error("{0}")]
    Cryptographic(String),
    /// The object is archived.
    #[error("{0}")]
    Archived(String),
    /// An Attribute Index does not exist.
    #[error("{0}")]
    IndexOutOfBounds(String),
    /// The object has no key value (kept elsewhere).
    #[error("{0}")]
    KeyValueNotPresent(String),
    /// The object was destroyed: its metadata remains, its content is gone.
    #[error("{0}")]
    Destroyed(String),
    /// The requested key format is not offered.
    #[error("{0}")]
    KeyFormatNotSupported(String),
    /// The response would exceed the client's Maximum Response Size.
    #[error("{0}")]
    ResponseTooLarge(String),
    /// An attribute may not be changed by clients.
    #[error("{0}")]
    ReadOnlyAttribute(String),
    /// The key's Cryptographic Usage Mask does not allow the operation.
    #[error("{0}")]
    IncompatibleUsageMask(String),
    /// An internal failure; the detail is logged, the client sees a generic message.
    #[error("internal error")]
    Internal(String),
}

impl OpError {
    /// The Result Reason in protocol version `v`.
    pub fn reason(&self, v: ProtocolVersion) -> ResultReason {
        let v2 = v.is_2x();
        match self {
            OpError::NotFound(_) => ResultReason::ITEM_NOT_FOUND,
            OpError::PermissionDenied(_) => ResultReason::PERMISSION_DENIED,
            OpError::AuthenticationFailed(_) => ResultReason::AUTHENTICATION_NOT_SUCCESSFUL,
            OpError::InvalidField(_) => ResultReason::INVALID_FIELD,
            OpError::InvalidMessage(_) => ResultReason::INVALID_MESSAGE,
            OpError::MissingData(_) => ResultReason::MISSING_DATA,
            OpError::OperationNotSupported(_) => ResultReason::OPERATION_NOT_SUPPORTED,
            OpError::FeatureNotSupported(_) => ResultReason::FEATURE_NOT_SUPPORTED,
            OpError::WrongState(_) if v2 => ResultReason::WRONG_KEY_LIFECYCLE_STATE,
            OpError::WrongState(_) => ResultReason::PERMISSION_DENIED,
            OpError::IllegalOperation(_) => ResultReason::ILLEGAL_OPERATION,
            OpError::Cryptographic(_) => ResultReason::CRYPTOGRAPHIC_FAILURE,
            OpError::Archived(_) => ResultReason::OBJECT_ARCHIVED,
            OpError::IndexOutOfBounds(_) => ResultReason::INDEX_OUT_OF_BOUNDS,
            OpError::KeyValueNotPresent(_) if v >= ProtocolVersion::V1_2 => {
                ResultReason::KEY_VALUE_NOT_PRESENT
            }
            OpError::KeyValueNotPresent(_) => ResultReason::ITEM_NOT_FOUND,
            // The OASIS 1.x test cases (TC-314) expect Item Not Found for a
            // Get after Destroy; KMIP 2.0 has a reason of its own.
            OpError::Destroyed(_) if v2 => ResultReason::OBJECT_DESTROYED,
            OpError::Destroyed(_) => ResultReason::ITEM_NOT_FOUND,
            OpError::KeyFormatNotSupported(_) => ResultReason::KEY_FORMAT_TYPE_NOT_SUPPORTED,
            OpError::ResponseTooLarge(_) => ResultReason::RESPONSE_TOO_LARGE,
            OpError::ReadOnlyAttribute(_) if v2 => ResultReason::ATTRIBUTE_READ_ONLY,
            OpError::ReadOnlyAttribute(_) => ResultReason::PERMISSION_DENIED,
            // KMIP 1.x has no reason of its own for a usage mask that
            // forbids the operation.
            OpError::IncompatibleUsageMask(_) if v2 => {
                ResultReason::INCOMPATIBLE_CRYPTOGRAPHIC_USAGE_MASK
            }
            OpError::IncompatibleUsageMask(_) => ResultReason::PERMISSION_DENIED,
            OpError::Internal(_) if v2 => ResultReason::INTERNAL_SERVER_ERROR,
            OpError::Internal(_) => ResultReason::GENERAL_FAILURE,
        }
    }

    /// The Result Status: always Operation Failed for synchronous errors.
    pub fn status(&self) -> ResultStatus {
        ResultStatus::OPERATION_FAILED
    }

    /// The Result Message sent to the client.
    pub fn client_message(&self) -> String {
        match self {
            OpError::Internal(_) => "internal error; see the server log".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<kmip::Error> for OpError {
    fn from(e: kmip::Error) -> Self {
        OpError::InvalidField(e.to_string())
    }
}

impl From<crate::store::StoreError> for OpError {
    fn from(e: crate::store::StoreError) -> Self {
        OpError::Internal(e.to_string())
    }
}

impl From<kmipd_hsm::Error> for OpError {
    fn from(e: kmipd_hsm::Error) -> Self {
        OpError::Internal(format!("key protection: {e}"))
    }
}

/// Result of operations.
pub type OpResult<T> = Result<T, OpError>;
