//! Envoy's NACK text made readable. A proto validation failure arrives as
//! the whole rejected message in protobuf text format (dozens of lines,
//! prefixed `goo.gle/debugonly`) followed by a chain of
//! `XValidationError.Field: embedded message failed validation | caused by ...`;
//! `/status` and the log get the chain as one field path and its reason.

/// Longest condensed text kept; Envoy's own texts are rarely longer.
const MAX_NACK_TEXT: usize = 1000;

/// One line: the field path and reason of a proto validation failure, or
/// the text with its lines joined, at most [`MAX_NACK_TEXT`] bytes.
pub fn condense_nack(message: &str) -> String {
    const FAILED: &str = "Proto constraint validation failed (";
    let text = match message.rfind(FAILED) {
        Some(at) => {
            let chain = &message[at + FAILED.len()..];
            let chain = chain.trim_end().strip_suffix(')').unwrap_or(chain);
            // `A.Field: embedded message failed validation | caused by B.Sub[0]: reason`
            let mut path = Vec::new();
            let mut reason = "";
            for step in chain.split(" | caused by ") {
                let (field, why) = step.split_once(": ").unwrap_or((step, ""));
                path.push(field.split_once('.').map_or(field, |(_, f)| f));
                reason = why;
            }
            format!("invalid {}: {reason}", path.join("."))
        }
        None => message.replace("goo.gle/debugonly", "").split_whitespace().collect::<Vec<_>>().join(" "),
    };
    if text.len() <= MAX_NACK_TEXT {
        return text;
    }
    let mut end = MAX_NACK_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proto_validation_failure_becomes_its_field_path_and_reason() {
        // Envoy 1.40's text for a header value with CR LF.
        let envoy = include_str!("nack_proto_validation.txt");
        assert!(envoy.lines().count() > 30);
        assert_eq!(
            condense_nack(envoy),
            r#"invalid RouteConfig.VirtualHosts[0].Routes[0].RequestHeadersToAdd[0].Header.Value: value does not match regex pattern "^[^\x00\n\r]*$""#
        );
    }

    #[test]
    fn other_texts_are_joined_into_one_line_and_bounded() {
        assert_eq!(
            condense_nack("Error adding/updating cluster(s) svc: Invalid path: /nonexistent/ca.pem"),
            "Error adding/updating cluster(s) svc: Invalid path: /nonexistent/ca.pem"
        );
        assert_eq!(condense_nack("goo.gle/debugonly  a\n  b {\n}\n"), "a b { }");
        let long = condense_nack(&"é".repeat(600));
        assert_eq!((long.len(), long.ends_with("...")), (MAX_NACK_TEXT + 3, true));
    }
}
