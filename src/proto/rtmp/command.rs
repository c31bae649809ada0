//! Command messages: AMF0 (type 20) or AMF3-wrapped (type 17: one format byte, 0 for AMF0,
//! then AMF0 values) decoded into [`Command`]s, and the replies we write.
//!
//! A command is `name, transaction id, command object (or null), arguments...`.

use super::error::{ErrorKind, RtmpError};
use super::session::PublishMode;
use crate::proto::amf0::{self, Amf0Value};

/// A command from the client, borrowing strings from the message.
#[derive(Clone, Debug, PartialEq)]
pub enum Command<'a> {
    Connect {
        txn: f64,
        app: &'a str,
        tc_url: Option<&'a str>,
        /// 0 (AMF0) unless the client asked for 3.
        object_encoding: f64,
        /// Enhanced RTMP: the FourCCs the client can handle.
        four_cc_list: Vec<&'a str>,
    },
    CreateStream {
        txn: f64,
    },
    Publish {
        txn: f64,
        /// As sent, query included.
        name: &'a str,
        mode: PublishMode,
    },
    Play {
        txn: f64,
        name: &'a str,
        start: f64,
        duration: f64,
        reset: bool,
    },
    /// The argument is the stream id; GStreamer's rtmp2sink sends the stream name instead.
    DeleteStream {
        txn: f64,
        stream_id: Option<f64>,
        name: Option<&'a str>,
    },
    CloseStream,
    ReleaseStream {
        txn: f64,
    },
    FcPublish {
        txn: f64,
        name: &'a str,
    },
    FcUnpublish {
        txn: f64,
        name: &'a str,
    },
    GetStreamLength {
        txn: f64,
    },
    CheckBandwidth {
        txn: f64,
    },
    /// `_result`/`_error` from the client, or calls that need no answer (`pause`,
    /// `receiveAudio`, `receiveVideo`, `seek` on a live stream, ...).
    Other {
        name: &'a str,
        txn: f64,
    },
}

impl Command<'_> {
    /// The command name as the client sent it (for errors and logs).
    pub fn name(&self) -> &str {
        match self {
            Command::Connect { .. } => "connect",
            Command::CreateStream { .. } => "createStream",
            Command::Publish { .. } => "publish",
            Command::Play { .. } => "play",
            Command::DeleteStream { .. } => "deleteStream",
            Command::CloseStream => "closeStream",
            Command::ReleaseStream { .. } => "releaseStream",
            Command::FcPublish { .. } => "FCPublish",
            Command::FcUnpublish { .. } => "FCUnpublish",
            Command::GetStreamLength { .. } => "getStreamLength",
            Command::CheckBandwidth { .. } => "checkBandwidth",
            Command::Other { name, .. } => name,
        }
    }
}

/// Strips the format byte of an AMF3 command or data message (type 15/17). Clients put 0
/// there and AMF0 after it; a body that starts with the AMF0 string marker instead is taken
/// as it is (it lacks the byte); anything else is real AMF3, which we do not decode.
pub fn strip_amf3_format(payload: &[u8]) -> Result<usize, RtmpError> {
    match payload.first() {
        Some(0) => Ok(1),
        Some(&amf0::marker::STRING) => Ok(0),
        _ => Err(ErrorKind::Amf3.into()),
    }
}

/// Decodes a command message payload (AMF0 values).
pub fn parse_command(payload: &[u8]) -> Result<Command<'_>, RtmpError> {
    let values = amf0::decode_all(payload)?;
    let mut it = values.into_iter();
    let name = it
        .next()
        .and_then(|v| v.as_str())
        .ok_or(ErrorKind::BadCommand("no command name"))?;
    let txn = it.next().and_then(|v| v.as_number()).unwrap_or(0.0);
    let object = it.next();
    let args: Vec<Amf0Value<'_>> = it.collect();
    let arg_str = |i: usize| args.get(i).and_then(|v| v.as_str());
    let arg_num = |i: usize| args.get(i).and_then(|v| v.as_number());
    Ok(match name {
        "connect" => {
            let object = object
                .filter(|o| o.properties().is_some())
                .ok_or(ErrorKind::BadCommand("connect without a command object"))?;
            let app = object
                .get("app")
                .and_then(|v| v.as_str())
                .ok_or(ErrorKind::BadCommand("connect without app"))?;
            let four_cc_list = match object.get("fourCcList") {
                Some(Amf0Value::StrictArray(items)) => {
                    items.iter().filter_map(|v| v.as_str()).collect()
                }
                _ => Vec::new(),
            };
            Command::Connect {
                txn,
                app,
                tc_url: object.get("tcUrl").and_then(|v| v.as_str()),
                object_encoding: object
                    .get("objectEncoding")
                    .and_then(|v| v.as_number())
                    .unwrap_or(0.0),
                four_cc_list,
            }
        }
        "createStream" => Command::CreateStream { txn },
        "publish" => Command::Publish {
            txn,
            name: arg_str(0).ok_or(ErrorKind::BadCommand("publish without a name"))?,
            mode: match arg_str(1) {
                Some("record") => PublishMode::Record,
                Some("append") => PublishMode::Append,
                _ => PublishMode::Live,
            },
        },
        "play" => Command::Play {
            txn,
            name: arg_str(0).ok_or(ErrorKind::BadCommand("play without a name"))?,
            start: arg_num(1).unwrap_or(-2.0),
            duration: arg_num(2).unwrap_or(-1.0),
            reset: args.get(3).and_then(|v| v.as_bool()).unwrap_or(false),
        },
        "deleteStream" => Command::DeleteStream {
            txn,
            stream_id: arg_num(0),
            name: arg_str(0),
        },
        "closeStream" => Command::CloseStream,
        "releaseStream" => Command::ReleaseStream { txn },
        "FCPublish" => Command::FcPublish {
            txn,
            name: arg_str(0).unwrap_or_default(),
        },
        "FCUnpublish" => Command::FcUnpublish {
            txn,
            name: arg_str(0).unwrap_or_default(),
        },
        "getStreamLength" => Command::GetStreamLength { txn },
        "checkBandwidth" | "_checkbw" => Command::CheckBandwidth { txn },
        other => Command::Other { name: other, txn },
    })
}

/// Writes `name, txn, null` then the `values`, one AMF0 command or data body.
pub fn write_call(name: &str, txn: f64, values: &[Amf0Value<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    amf0::write_string(&mut out, name);
    amf0::write_number(&mut out, txn);
    amf0::write_null(&mut out);
    for value in values {
        amf0::write_value(&mut out, value);
    }
    out
}

/// An `onStatus` call: `onStatus, 0, null, {level, code, description}`.
pub fn on_status(level: &str, code: &str, description: &str) -> Vec<u8> {
    write_call(
        "onStatus",
        0.0,
        &[Amf0Value::Object(vec![
            ("level", Amf0Value::String(level)),
            ("code", Amf0Value::String(code)),
            ("description", Amf0Value::String(description)),
        ])],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(values: &[Amf0Value<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            amf0::write_value(&mut out, v);
        }
        out
    }

    #[test]
    fn connect_fields_are_read() {
        let body = call(&[
            Amf0Value::String("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::Object(vec![
                ("app", Amf0Value::String("live?x=1")),
                ("tcUrl", Amf0Value::String("rtmp://h/live?x=1")),
                ("objectEncoding", Amf0Value::Number(3.0)),
                (
                    "fourCcList",
                    Amf0Value::StrictArray(vec![Amf0Value::String("hvc1"), Amf0Value::Null]),
                ),
            ]),
        ]);
        assert_eq!(
            parse_command(&body).unwrap(),
            Command::Connect {
                txn: 1.0,
                app: "live?x=1",
                tc_url: Some("rtmp://h/live?x=1"),
                object_encoding: 3.0,
                four_cc_list: vec!["hvc1"],
            }
        );
        let no_app = call(&[
            Amf0Value::String("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::Object(vec![]),
        ]);
        assert_eq!(parse_command(&no_app).unwrap_err().reason(), "bad_command");
    }

    #[test]
    fn publish_and_play_arguments() {
        let publish = call(&[
            Amf0Value::String("publish"),
            Amf0Value::Number(5.0),
            Amf0Value::Null,
            Amf0Value::String("s?key=abc"),
            Amf0Value::String("append"),
        ]);
        assert_eq!(
            parse_command(&publish).unwrap(),
            Command::Publish {
                txn: 5.0,
                name: "s?key=abc",
                mode: PublishMode::Append
            }
        );
        let play = call(&[
            Amf0Value::String("play"),
            Amf0Value::Number(4.0),
            Amf0Value::Null,
            Amf0Value::String("s"),
            Amf0Value::Number(-1000.0),
        ]);
        assert_eq!(
            parse_command(&play).unwrap(),
            Command::Play {
                txn: 4.0,
                name: "s",
                start: -1000.0,
                duration: -1.0,
                reset: false
            }
        );
        let unnamed = call(&[Amf0Value::String("publish"), Amf0Value::Number(5.0)]);
        assert_eq!(parse_command(&unnamed).unwrap_err().reason(), "bad_command");
        assert_eq!(parse_command(&[0x02, 0, 1]).unwrap_err().reason(), "amf");
        assert_eq!(strip_amf3_format(&[0, 2]).unwrap(), 1);
        assert_eq!(strip_amf3_format(&[2, 0]).unwrap(), 0);
        assert_eq!(strip_amf3_format(&[0x11]).unwrap_err().reason(), "amf");
    }
}
