//! The canonical JSON encoding that event hashes are computed over.
//!
//! Objects have their members sorted by the UTF-8 bytes of their names, there
//! is no whitespace, strings use JSON's minimal escaping (`"`, `\` and control
//! characters only, as serde_json writes them) and numbers are integers in
//! decimal. Any two encoders that follow these rules produce the same bytes
//! for the same value, whatever order the members were stored in.

use serde_json::Value;

/// Appends the canonical encoding of `value` to `out`.
pub(crate) fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(name.clone()), out);
                out.push(b':');
                write(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &Value, out: &mut Vec<u8>) {
    // Writing a scalar into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn canonical(v: &serde_json::Value) -> String {
        let mut out = Vec::new();
        super::write(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn member_order_and_whitespace_do_not_matter() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{ "b": 1, "a": {"y": [1, "x\n"], "x": null} }"#).unwrap();
        let b = json!({"a": {"x": null, "y": [1, "x\n"]}, "b": 1});
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(canonical(&a), r#"{"a":{"x":null,"y":[1,"x\n"]},"b":1}"#);
    }

    #[test]
    fn names_sort_by_bytes_not_by_case_folding() {
        let v = json!({"b": true, "B": false, "é": 0, "a": 1});
        assert_eq!(canonical(&v), r#"{"B":false,"a":1,"b":true,"é":0}"#);
    }
}
