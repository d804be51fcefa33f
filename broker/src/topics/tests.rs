use super::*;

#[test]
fn topic_names_follow_kafkas_rule() {
    assert!(validate_name("orders.v1_x-2").is_ok());
    for bad in ["", ".", "..", "a b", "a/b", &"x".repeat(250)] {
        assert!(validate_name(bad).is_err(), "{bad:?} accepted");
    }
}
