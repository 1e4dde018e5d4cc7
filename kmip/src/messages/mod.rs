//! Typed KMIP messages: request and response headers with every field,
//! batch items, message extensions and the payloads of each operation.
//!
//! A message decodes and encodes in the protocol version of its header: the
//! header is read first and its version is the [`Ctx`] of the payloads.

pub mod attributes;
pub mod objects;
pub mod payloads;

use crate::codec::{Bytes, Ctx, DateTime, Field, ProtocolVersion, Result, Single};
use crate::tables::{
    AttestationType, BatchErrorContinuationOption, CredentialType, Operation, ResultReason,
    ResultStatus, Tag,
};
use crate::ttlv::{Error, ErrorKind, Limits, Ttlv, Value};
pub use payloads::{RequestPayload, ResponsePayload};

crate::kmip_struct! {
    /// A Nonce (attestation, 1.2+).
    pub struct Nonce {
        /// Identifier.
        nonce_id: Bytes = NONCE_ID,
        /// Value.
        nonce_value: Bytes = NONCE_VALUE,
    }
}

/// A credential: Username and Password, Device, Attestation, or any other
/// type kept as it came. `Debug` never shows passwords.
#[derive(Clone, PartialEq)]
pub enum Credential {
    /// Username and optional password.
    UsernamePassword {
        /// User.
        username: String,
        /// Password.
        password: Option<String>,
    },
    /// Device credential (every field optional).
    Device {
        /// Serial number.
        device_serial_number: Option<String>,
        /// Password.
        password: Option<String>,
        /// Device id.
        device_identifier: Option<String>,
        /// Network id.
        network_identifier: Option<String>,
        /// Machine id.
        machine_identifier: Option<String>,
        /// Media id.
        media_identifier: Option<String>,
    },
    /// Attestation credential.
    Attestation {
        /// Nonce.
        nonce: Nonce,
        /// Type.
        attestation_type: AttestationType,
        /// Measurement.
        attestation_measurement: Option<Bytes>,
        /// Assertion.
        attestation_assertion: Option<Bytes>,
    },
    /// Another credential type, kept as it came.
    Other {
        /// Type.
        credential_type: CredentialType,
        /// Value.
        credential_value: Ttlv,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::UsernamePassword { username, password } => f
                .debug_struct("UsernamePassword")
                .field("username", username)
                .field("password", &password.as_ref().map(|_| "<redacted>"))
                .finish(),
            Credential::Device { .. } => f.write_str("Device(<redacted>)"),
            Credential::Attestation {
                attestation_type, ..
            } => {
                write!(f, "Attestation({attestation_type:?})")
            }
            Credential::Other {
                credential_type, ..
            } => write!(f, "Other({credential_type:?})"),
        }
    }
}

fn opt_text(v: &Ttlv, tag: Tag) -> Result<Option<String>> {
    v.child(tag)
        .map(|t| t.as_text().map(str::to_owned))
        .transpose()
}

fn only_tags(v: &Ttlv, allowed: &[Tag]) -> Result<()> {
    for c in v.children()? {
        if !allowed.contains(&c.tag) {
            return Err(Error::new(ErrorKind::Unexpected(c.tag)).within(v.tag));
        }
    }
    Ok(())
}

impl Field for Credential {
    fn decode(item: &Ttlv, ctx: Ctx) -> Result<Self> {
        only_tags(item, &[Tag::CREDENTIAL_TYPE, Tag::CREDENTIAL_VALUE])?;
        let ty = CredentialType(item.required(Tag::CREDENTIAL_TYPE)?.as_enum()?);
        let v = item.required(Tag::CREDENTIAL_VALUE)?;
        let r = match ty {
            CredentialType::USERNAME_AND_PASSWORD => {
                only_tags(v, &[Tag::USERNAME, Tag::PASSWORD])?;
                Credential::UsernamePassword {
                    username: v.required(Tag::USERNAME)?.as_text()?.to_owned(),
                    password: opt_text(v, Tag::PASSWORD)?,
                }
            }
            CredentialType::DEVICE => {
                only_tags(
                    v,
                    &[
                        Tag::DEVICE_SERIAL_NUMBER,
                        Tag::PASSWORD,
                        Tag::DEVICE_IDENTIFIER,
                        Tag::NETWORK_IDENTIFIER,
                        Tag::MACHINE_IDENTIFIER,
                        Tag::MEDIA_IDENTIFIER,
                    ],
                )?;
                Credential::Device {
                    device_serial_number: opt_text(v, Tag::DEVICE_SERIAL_NUMBER)?,
                    password: opt_text(v, Tag::PASSWORD)?,
                    device_identifier: opt_text(v, Tag::DEVICE_IDENTIFIER)?,
                    network_identifier: opt_text(v, Tag::NETWORK_IDENTIFIER)?,
                    machine_identifier: opt_text(v, Tag::MACHINE_IDENTIFIER)?,
                    media_identifier: opt_text(v, Tag::MEDIA_IDENTIFIER)?,
                }
            }
            CredentialType::ATTESTATION => {
                only_tags(
                    v,
                    &[
                        Tag::NONCE,
                        Tag::ATTESTATION_TYPE,
                        Tag::ATTESTATION_MEASUREMENT,
                        Tag::ATTESTATION_ASSERTION,
                    ],
                )?;
                Credential::Attestation {
                    nonce: Nonce::decode(v.required(Tag::NONCE)?, ctx)?,
                    attestation_type: AttestationType(
                        v.required(Tag::ATTESTATION_TYPE)?.as_enum()?,
                    ),
                    attestation_measurement: v
                        .child(Tag::ATTESTATION_MEASUREMENT)
                        .map(|t| Bytes::decode(t, ctx))
                        .transpose()?,
                    attestation_assertion: v
                        .child(Tag::ATTESTATION_ASSERTION)
                        .map(|t| Bytes::decode(t, ctx))
                        .transpose()?,
                }
            }
            other => Credential::Other {
                credential_type: other,
                credential_value: v.clone(),
            },
        };
        Ok(r)
    }

    fn encode(&self, tag: Tag, ctx: Ctx) -> Ttlv {
        let push_text = |c: &mut Vec<Ttlv>, t: Tag, v: &Option<String>| {
            if let Some(v) = v {
                c.push(Ttlv::text(t, v.clone()));
            }
        };
        let (ty, value) = match self {
            Credential::UsernamePassword { username, password } => {
                let mut c = vec![Ttlv::text(Tag::USERNAME, username.clone())];
                push_text(&mut c, Tag::PASSWORD, password);
                (
                    CredentialType::USERNAME_AND_PASSWORD,
                    Ttlv::structure(Tag::CREDENTIAL_VALUE, c),
                )
            }
            Credential::Device {
                device_serial_number,
                password,
                device_identifier,
                network_identifier,
                machine_identifier,
                media_identifier,
            } => {
                let mut c = Vec::new();
                push_text(&mut c, Tag::DEVICE_SERIAL_NUMBER, device_serial_number);
                push_text(&mut c, Tag::PASSWORD, password);
                push_text(&mut c, Tag::DEVICE_IDENTIFIER, device_identifier);
                push_text(&mut c, Tag::NETWORK_IDENTIFIER, network_identifier);
                push_text(&mut c, Tag::MACHINE_IDENTIFIER, machine_identifier);
                push_text(&mut c, Tag::MEDIA_IDENTIFIER, media_identifier);
                (
                    CredentialType::DEVICE,
                    Ttlv::structure(Tag::CREDENTIAL_VALUE, c),
                )
            }
            Credential::Attestation {
                nonce,
                attestation_type,
                attestation_measurement,
                attestation_assertion,
            } => {
                let mut c = vec![
                    nonce.encode(Tag::NONCE, ctx),
                    Ttlv::enumeration(Tag::ATTESTATION_TYPE, attestation_type.0),
                ];
                if let Some(m) = attestation_measurement {
                    c.push(m.encode(Tag::ATTESTATION_MEASUREMENT, ctx));
                }
                if let Some(a) = attestation_assertion {
                    c.push(a.encode(Tag::ATTESTATION_ASSERTION, ctx));
                }
                (
                    CredentialType::ATTESTATION,
                    Ttlv::structure(Tag::CREDENTIAL_VALUE, c),
                )
            }
            Credential::Other {
                credential_type,
                credential_value,
            } => (
                *credential_type,
                Ttlv {
                    tag: Tag::CREDENTIAL_VALUE,
                    value: credential_value.value.clone(),
                },
            ),
        };
        Ttlv::structure(
            tag,
            vec![Ttlv::enumeration(Tag::CREDENTIAL_TYPE, ty.0), value],
        )
    }
}
impl Single for Credential {}

crate::kmip_struct! {
    /// Authentication: one or more credentials.
    pub struct Authentication {
        /// Credentials.
        credentials: Vec<Credential> = CREDENTIAL,
    }
}

crate::kmip_struct! {
    /// Message Extension.
    pub struct MessageExtension {
        /// Vendor.
        vendor_identification: String = VENDOR_IDENTIFICATION,
        /// Whether a server that does not understand it must fail.
        criticality_indicator: bool = CRITICALITY_INDICATOR,
        /// Content.
        vendor_extension: Ttlv = VENDOR_EXTENSION,
    }
}

crate::kmip_struct! {
    /// Request Header.
    pub struct RequestHeader {
        /// Version of this message.
        protocol_version: ProtocolVersion = PROTOCOL_VERSION,
        /// Largest response the client accepts.
        maximum_response_size: Option<i32> = MAXIMUM_RESPONSE_SIZE,
        /// Client correlation (1.4).
        client_correlation_value: Option<String> = CLIENT_CORRELATION_VALUE,
        /// Server correlation (1.4).
        server_correlation_value: Option<String> = SERVER_CORRELATION_VALUE,
        /// Asynchronous responses allowed.
        asynchronous_indicator: Option<bool> = ASYNCHRONOUS_INDICATOR,
        /// Attestation capable (1.2+).
        attestation_capable_indicator: Option<bool> = ATTESTATION_CAPABLE_INDICATOR,
        /// Attestation types (1.2+).
        attestation_types: Vec<AttestationType> = ATTESTATION_TYPE,
        /// Credentials.
        authentication: Option<Authentication> = AUTHENTICATION,
        /// Stop, Continue or Undo.
        batch_error_continuation_option: Option<BatchErrorContinuationOption> = BATCH_ERROR_CONTINUATION_OPTION,
        /// Whether batch order matters.
        batch_order_option: Option<bool> = BATCH_ORDER_OPTION,
        /// Client time.
        time_stamp: Option<DateTime> = TIME_STAMP,
        /// Number of batch items.
        batch_count: i32 = BATCH_COUNT,
    }
}

crate::kmip_struct! {
    /// Response Header.
    pub struct ResponseHeader {
        /// Version of this message.
        protocol_version: ProtocolVersion = PROTOCOL_VERSION,
        /// Server time.
        time_stamp: DateTime = TIME_STAMP,
        /// Nonce (1.2+).
        nonce: Option<Nonce> = NONCE,
        /// Server hashed password (2.0).
        server_hashed_password: Option<Bytes> = SERVER_HASHED_PASSWORD,
        /// Attestation types required (1.2+).
        attestation_types: Vec<AttestationType> = ATTESTATION_TYPE,
        /// Client correlation (1.4).
        client_correlation_value: Option<String> = CLIENT_CORRELATION_VALUE,
        /// Server correlation (1.4).
        server_correlation_value: Option<String> = SERVER_CORRELATION_VALUE,
        /// Number of batch items.
        batch_count: i32 = BATCH_COUNT,
    }
}

/// A request batch item.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestBatchItem {
    /// Operation.
    pub operation: Operation,
    /// Ephemeral (2.0).
    pub ephemeral: Option<bool>,
    /// Unique Batch Item ID: opaque bytes, echoed byte for byte.
    pub unique_batch_item_id: Option<Bytes>,
    /// Payload.
    pub payload: RequestPayload,
    /// Message Extension.
    pub message_extension: Option<MessageExtension>,
}

/// A response batch item.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseBatchItem {
    /// Operation (required in responses to requests that named one).
    pub operation: Option<Operation>,
    /// Echo of the request's Unique Batch Item ID.
    pub unique_batch_item_id: Option<Bytes>,
    /// Result.
    pub result_status: ResultStatus,
    /// Reason, on failure.
    pub result_reason: Option<ResultReason>,
    /// Message, on failure.
    pub result_message: Option<String>,
    /// Correlation of a pending operation.
    pub asynchronous_correlation_value: Option<Bytes>,
    /// Payload.
    pub payload: Option<ResponsePayload>,
    /// Message Extension.
    pub message_extension: Option<MessageExtension>,
}

impl ResponseBatchItem {
    /// A successful item.
    pub fn success(
        operation: Operation,
        id: Option<Bytes>,
        payload: Option<ResponsePayload>,
    ) -> Self {
        Self {
            operation: Some(operation),
            unique_batch_item_id: id,
            result_status: ResultStatus::SUCCESS,
            result_reason: None,
            result_message: None,
            asynchronous_correlation_value: None,
            payload,
            message_extension: None,
        }
    }

    /// A failed item.
    pub fn failure(
        operation: Option<Operation>,
        id: Option<Bytes>,
        status: ResultStatus,
        reason: ResultReason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            operation,
            unique_batch_item_id: id,
            result_status: status,
            result_reason: Some(reason),
            result_message: Some(message.into()),
            asynchronous_correlation_value: None,
            payload: None,
            message_extension: None,
        }
    }
}

/// A request message.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMessage {
    /// Header.
    pub header: RequestHeader,
    /// Batch items.
    pub items: Vec<RequestBatchItem>,
}

/// A response message.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseMessage {
    /// Header.
    pub header: ResponseHeader,
    /// Batch items.
    pub items: Vec<ResponseBatchItem>,
}

fn header_ctx(item: &Ttlv, header_tag: Tag) -> Result<(Ctx, &Ttlv)> {
    let header = item.required(header_tag)?;
    let pv = header
        .required(Tag::PROTOCOL_VERSION)
        .map_err(|e| e.within(item.tag))?;
    let version = ProtocolVersion::decode(pv, Ctx::new(ProtocolVersion::V1_0))
        .map_err(|e| e.within(header_tag).within(item.tag))?;
    Ok((Ctx::new(version), header))
}

impl RequestMessage {
    /// Decodes from wire bytes.
    pub fn from_bytes(bytes: &[u8], limits: &Limits) -> Result<Self> {
        Self::from_ttlv(&crate::ttlv::decode(bytes, limits)?)
    }

    /// Reads only the protocol version from a request tree, for answering
    /// messages whose body failed to decode in the right version.
    pub fn peek_version(item: &Ttlv) -> Option<ProtocolVersion> {
        header_ctx(item, Tag::REQUEST_HEADER)
            .ok()
            .map(|(c, _)| c.version)
    }

    /// Decodes from a tree.
    pub fn from_ttlv(item: &Ttlv) -> Result<Self> {
        if item.tag != Tag::REQUEST_MESSAGE {
            return Err(Error::new(ErrorKind::BadFrame("not a Request Message")));
        }
        let (ctx, header) = header_ctx(item, Tag::REQUEST_HEADER)?;
        let header = RequestHeader::decode(header, ctx).map_err(|e| e.within(item.tag))?;
        let mut items = Vec::new();
        for c in item.children()? {
            match c.tag {
                Tag::REQUEST_HEADER => {}
                Tag::BATCH_ITEM => {
                    items.push(RequestBatchItem::decode(c, ctx).map_err(|e| e.within(item.tag))?)
                }
                t => return Err(Error::new(ErrorKind::Unexpected(t)).within(item.tag)),
            }
        }
        Ok(Self { header, items })
    }

    /// The protocol version context.
    pub fn ctx(&self) -> Ctx {
        Ctx::new(self.header.protocol_version)
    }

    /// Encodes to a tree.
    pub fn to_ttlv(&self) -> Ttlv {
        let ctx = self.ctx();
        let mut c = vec![self.header.encode(Tag::REQUEST_HEADER, ctx)];
        c.extend(self.items.iter().map(|i| i.encode(Tag::BATCH_ITEM, ctx)));
        Ttlv::structure(Tag::REQUEST_MESSAGE, c)
    }
}

impl ResponseMessage {
    /// Decodes from wire bytes.
    pub fn from_bytes(bytes: &[u8], limits: &Limits) -> Result<Self> {
        Self::from_ttlv(&crate::ttlv::decode(bytes, limits)?)
    }

    /// Decodes from a tree.
    pub fn from_ttlv(item: &Ttlv) -> Result<Self> {
        if item.tag != Tag::RESPONSE_MESSAGE {
            return Err(Error::new(ErrorKind::BadFrame("not a Response Message")));
        }
        let (ctx, header) = header_ctx(item, Tag::RESPONSE_HEADER)?;
        let header = ResponseHeader::decode(header, ctx).map_err(|e| e.within(item.tag))?;
        let mut items = Vec::new();
        for c in item.children()? {
            match c.tag {
                Tag::RESPONSE_HEADER => {}
                Tag::BATCH_ITEM => {
                    items.push(ResponseBatchItem::decode(c, ctx).map_err(|e| e.within(item.tag))?)
                }
                t => return Err(Error::new(ErrorKind::Unexpected(t)).within(item.tag)),
            }
        }
        Ok(Self { header, items })
    }

    /// Encodes to a tree.
    pub fn to_ttlv(&self) -> Ttlv {
        let ctx = Ctx::new(self.header.protocol_version);
        let mut c = vec![self.header.encode(Tag::RESPONSE_HEADER, ctx)];
        c.extend(self.items.iter().map(|i| i.encode(Tag::BATCH_ITEM, ctx)));
        Ttlv::structure(Tag::RESPONSE_MESSAGE, c)
    }

    /// Encodes to wire bytes into `out` (cleared first), reusing its buffer.
    pub fn encode_into(
        &self,
        out: Vec<u8>,
    ) -> std::result::Result<Vec<u8>, crate::ttlv::EncodeError> {
        let mut e = crate::ttlv::Encoder::from_buffer(out);
        e.item(&self.to_ttlv())?;
        Ok(e.into_bytes())
    }
}

impl Field for RequestBatchItem {
    fn decode(item: &Ttlv, ctx: Ctx) -> Result<Self> {
        let mut operation = None;
        let mut ephemeral = None;
        let mut id = None;
        let mut payload = None;
        let mut ext = None;
        for c in item.children()? {
            match c.tag {
                Tag::OPERATION if operation.is_none() => operation = Some(Operation(c.as_enum()?)),
                Tag::EPHEMERAL if ephemeral.is_none() => ephemeral = Some(c.as_bool()?),
                Tag::UNIQUE_BATCH_ITEM_ID if id.is_none() => id = Some(Bytes::decode(c, ctx)?),
                Tag::REQUEST_PAYLOAD if payload.is_none() => payload = Some(c),
                Tag::MESSAGE_EXTENSION if ext.is_none() => {
                    ext = Some(MessageExtension::decode(c, ctx)?)
                }
                t => return Err(Error::new(ErrorKind::Unexpected(t)).within(item.tag)),
            }
        }
        let operation = operation.ok_or_else(|| Error::missing(Tag::OPERATION).within(item.tag))?;
        let payload =
            payload.ok_or_else(|| Error::missing(Tag::REQUEST_PAYLOAD).within(item.tag))?;
        let payload =
            RequestPayload::decode(operation, payload, ctx).map_err(|e| e.within(item.tag))?;
        Ok(Self {
            operation,
            ephemeral,
            unique_batch_item_id: id,
            payload,
            message_extension: ext,
        })
    }

    fn encode(&self, tag: Tag, ctx: Ctx) -> Ttlv {
        let mut c = vec![Ttlv::enumeration(Tag::OPERATION, self.operation.0)];
        if let Some(e) = self.ephemeral {
            c.push(Ttlv::boolean(Tag::EPHEMERAL, e));
        }
        if let Some(id) = &self.unique_batch_item_id {
            c.push(id.encode(Tag::UNIQUE_BATCH_ITEM_ID, ctx));
        }
        c.push(self.payload.encode(Tag::REQUEST_PAYLOAD, ctx));
        if let Some(e) = &self.message_extension {
            c.push(e.encode(Tag::MESSAGE_EXTENSION, ctx));
        }
        Ttlv::structure(tag, c)
    }
}

impl Field for ResponseBatchItem {
    fn decode(item: &Ttlv, ctx: Ctx) -> Result<Self> {
        let mut operation = None;
        let mut id = None;
        let mut status = None;
        let mut reason = None;
        let mut message = None;
        let mut acv = None;
        let mut payload = None;
        let mut ext = None;
        for c in item.children()? {
            match c.tag {
                Tag::OPERATION if operation.is_none() => operation = Some(Operation(c.as_enum()?)),
                Tag::UNIQUE_BATCH_ITEM_ID if id.is_none() => id = Some(Bytes::decode(c, ctx)?),
                Tag::RESULT_STATUS if status.is_none() => status = Some(ResultStatus(c.as_enum()?)),
                Tag::RESULT_REASON if reason.is_none() => reason = Some(ResultReason(c.as_enum()?)),
                Tag::RESULT_MESSAGE if message.is_none() => message = Some(c.as_text()?.to_owned()),
                Tag::ASYNCHRONOUS_CORRELATION_VALUE if acv.is_none() => {
                    acv = Some(Bytes::decode(c, ctx)?)
                }
                Tag::RESPONSE_PAYLOAD if payload.is_none() => payload = Some(c),
                Tag::MESSAGE_EXTENSION if ext.is_none() => {
                    ext = Some(MessageExtension::decode(c, ctx)?)
                }
                t => return Err(Error::new(ErrorKind::Unexpected(t)).within(item.tag)),
            }
        }
        let result_status =
            status.ok_or_else(|| Error::missing(Tag::RESULT_STATUS).within(item.tag))?;
        let payload = match (payload, operation) {
            (Some(p), Some(op)) => {
                Some(ResponsePayload::decode(op, p, ctx).map_err(|e| e.within(item.tag))?)
            }
            (Some(p), None) => Some(ResponsePayload::Other(p.clone())),
            (None, _) => None,
        };
        Ok(Self {
            operation,
            unique_batch_item_id: id,
            result_status,
            result_reason: reason,
            result_message: message,
            asynchronous_correlation_value: acv,
            payload,
            message_extension: ext,
        })
    }

    fn encode(&self, tag: Tag, ctx: Ctx) -> Ttlv {
        let mut c = Vec::with_capacity(5);
        if let Some(op) = self.operation {
            c.push(Ttlv::enumeration(Tag::OPERATION, op.0));
        }
        if let Some(id) = &self.unique_batch_item_id {
            c.push(id.encode(Tag::UNIQUE_BATCH_ITEM_ID, ctx));
        }
        c.push(Ttlv::enumeration(Tag::RESULT_STATUS, self.result_status.0));
        if let Some(r) = self.result_reason {
            c.push(Ttlv::enumeration(Tag::RESULT_REASON, r.0));
        }
        if let Some(m) = &self.result_message {
            c.push(Ttlv::text(Tag::RESULT_MESSAGE, m.clone()));
        }
        if let Some(a) = &self.asynchronous_correlation_value {
            c.push(a.encode(Tag::ASYNCHRONOUS_CORRELATION_VALUE, ctx));
        }
        if let Some(p) = &self.payload {
            c.push(p.encode(Tag::RESPONSE_PAYLOAD, ctx));
        }
        if let Some(e) = &self.message_extension {
            c.push(e.encode(Tag::MESSAGE_EXTENSION, ctx));
        }
        Ttlv::structure(tag, c)
    }
}

/// Builds a Value from a Ttlv child (helper for attribute values).
pub fn value_of(item: &Ttlv) -> Value {
    item.value.clone()
}
