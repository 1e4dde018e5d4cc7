//! Discover Versions and Query.

use super::OpCtx;
use kmip::messages::payloads::{
    DiscoverVersionsRequest, DiscoverVersionsResponse, QueryRequest, QueryResponse,
};
use kmip::tables::{ObjectType, Operation, QueryFunction, Tag};
use kmip::{ProtocolVersion, Ttlv};

/// Operations kmipd implements, as Query reports them.
pub const OPERATIONS: &[Operation] = &[
    Operation::CREATE,
    Operation::REGISTER,
    Operation::RE_KEY,
    Operation::LOCATE,
    Operation::CHECK,
    Operation::GET,
    Operation::GET_ATTRIBUTES,
    Operation::GET_ATTRIBUTE_LIST,
    Operation::ADD_ATTRIBUTE,
    Operation::MODIFY_ATTRIBUTE,
    Operation::DELETE_ATTRIBUTE,
    Operation::OBTAIN_LEASE,
    Operation::GET_USAGE_ALLOCATION,
    Operation::ACTIVATE,
    Operation::REVOKE,
    Operation::DESTROY,
    Operation::ARCHIVE,
    Operation::RECOVER,
    Operation::QUERY,
    Operation::DISCOVER_VERSIONS,
    Operation::RNG_RETRIEVE,
    Operation::RNG_SEED,
    // Server-side symmetric cryptography (ops/crypto.rs).
    Operation::ENCRYPT,
    Operation::DECRYPT,
    // Asynchronous replies (ops/pending.rs).
    Operation::POLL,
    Operation::CANCEL,
];

/// Operations kmipd implements that KMIP 1.2 introduced.
pub const OPERATIONS_1_2: &[Operation] = &[Operation::CREATE_SPLIT_KEY, Operation::JOIN_SPLIT_KEY];

/// Object types kmipd stores.
pub const OBJECT_TYPES: &[ObjectType] = &[
    ObjectType::SYMMETRIC_KEY,
    ObjectType::SECRET_DATA,
    ObjectType::OPAQUE_OBJECT,
    ObjectType::CERTIFICATE,
    ObjectType::PUBLIC_KEY,
    ObjectType::PRIVATE_KEY,
    ObjectType::SPLIT_KEY,
    ObjectType::TEMPLATE,
];

/// Discover Versions: the client's offers that kmipd speaks, in the client's
/// order; every supported version, newest first, when the client offers none.
pub fn discover_versions(p: &DiscoverVersionsRequest) -> DiscoverVersionsResponse {
    let protocol_versions = if p.protocol_versions.is_empty() {
        ProtocolVersion::SUPPORTED.to_vec()
    } else {
        p.protocol_versions
            .iter()
            .copied()
            .filter(|v| ProtocolVersion::SUPPORTED.contains(v))
            .collect()
    };
    DiscoverVersionsResponse { protocol_versions }
}

/// Query: operations, objects, server information.
pub fn query(ctx: &OpCtx<'_>, p: &QueryRequest) -> QueryResponse {
    let mut r = QueryResponse::default();
    for f in &p.query_functions {
        match *f {
            QueryFunction::QUERY_OPERATIONS => {
                r.operations = OPERATIONS.to_vec();
                if ctx.version >= ProtocolVersion::V1_2 {
                    r.operations.extend_from_slice(OPERATIONS_1_2);
                }
                if ctx.version.is_2x() {
                    r.operations.push(Operation::SET_ATTRIBUTE);
                }
            }
            QueryFunction::QUERY_OBJECTS => r.object_types = OBJECT_TYPES.to_vec(),
            QueryFunction::QUERY_SERVER_INFORMATION => {
                r.vendor_identification = Some(ctx.server.vendor.clone());
                r.server_information = Some(Ttlv::structure(
                    Tag::SERVER_INFORMATION,
                    if ctx.version.is_2x() {
                        vec![
                            Ttlv::text(Tag::SERVER_NAME, "kmipd"),
                            Ttlv::text(Tag::SERVER_VERSION, env!("CARGO_PKG_VERSION")),
                            Ttlv::text(Tag::PRODUCT_NAME, "kmipd"),
                        ]
                    } else {
                        Vec::new()
                    },
                ));
            }
            // Application namespaces, extensions and the 1.3+ capability,
            // profile and validation functions: kmipd has none to report, and
            // an empty answer is the truthful one.
            _ => {}
        }
    }
    r
}
