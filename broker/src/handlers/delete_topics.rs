//! DeleteTopics: by name (v0-5) or by name or id (v6+).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::{str_bytes, RequestContext};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let topics = &ctx.broker.topics;
    // v0-5 list names; v6+ lists states carrying a name or an id.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut resp = DeleteTopicsResponse::default();
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default();
        r.topic_id = id;
        let name = name.or_else(|| topics.get_by_id(id).map(|t| t.name.clone()));
        match name {
            None => {
                r.error_code = ResponseError::UnknownTopicId.code();
                r.error_message = Some(str_bytes(&format!("no topic has id {id}")));
            }
            Some(name) => {
                r.name = Some(TopicName(str_bytes(&name)));
                match topics.delete(&name) {
                    Ok(t) => r.topic_id = t.id,
                    Err(e) => {
                        r.error_code = e.code();
                        if ctx.version >= 5 {
                            r.error_message = Some(str_bytes(&e.to_string()));
                        }
                    }
                }
            }
        }
        resp.responses.push(r);
    }
    resp
}
