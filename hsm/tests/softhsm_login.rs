//! Login handling against SoftHSM2, in a process of its own: PKCS#11 login
//! state is shared by every session of an application, so a wrong PIN can
//! only be seen before anything logged in, and a logout affects everyone.

mod common;

use common::softhsm;
use kmipd_hsm::cryptoki::session::SessionState;
use kmipd_hsm::{Error, Health, KeyProtector, Pkcs11Protector};

#[test]
fn wrong_pin_then_lost_login_is_recovered() {
    // 1. A wrong PIN is a typed error naming C_Login and the return code.
    let mut c = softhsm::config("login");
    c.pin_env = None;
    c.pin_file = Some(softhsm::pin_file("pin-wrong", "000000", 0o600));
    let err = Pkcs11Protector::open(&c).unwrap_err();
    assert!(
        matches!(&err, Error::Pkcs11 { function, rv } if function == "C_Login" && rv == "CKR_PIN_INCORRECT"),
        "{err:?}"
    );

    // 2. The right PIN works.
    let p = Pkcs11Protector::open(&softhsm::config("login")).unwrap();
    let key = [1u8; 32];
    let w = p.protect(b"id", &key).unwrap();

    // 3. Someone logs the application out (as an expired login would):
    //    every worker session loses its login. The next calls log in again.
    let ctx = kmipd_hsm::pkcs11::module(&softhsm::token().module).unwrap();
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == softhsm::TOKEN_LABEL)
        .unwrap();
    let session = ctx.open_ro_session(slot).unwrap();
    session.logout().unwrap();
    assert_eq!(
        session.get_session_info().unwrap().session_state(),
        SessionState::RoPublic,
        "the application is logged out"
    );
    drop(session);
    for _ in 0..20 {
        assert_eq!(&p.unprotect(b"id", &w).unwrap()[..], &key[..]);
        p.protect(b"id", &key).unwrap();
    }
    assert_eq!(p.health(), Health::Ok);
    assert_eq!(p.versions().unwrap().len(), 1);
}
