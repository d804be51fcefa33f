use super::*;

#[test]
fn storage_errors_are_their_own_kind_and_others_keep_librdkafkas_name() {
    let storage = KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError);
    assert_eq!(error_kind(&storage), "storage");
    let consumed = KafkaError::MessageConsumption(RDKafkaErrorCode::KafkaStorageError);
    assert_eq!(error_kind(&consumed), "storage");
    let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
    assert_eq!(error_kind(&timeout), "MessageTimedOut");
    let replicas = KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas);
    assert_eq!(error_kind(&replicas), "NotEnoughReplicas");
}
