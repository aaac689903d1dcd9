//! Just enough HTTP/1.1 for the harness: reading one message (Content-Length, chunked, or to the
//! end of the stream) and a keep-alive client. Blocking and dependency-free, so that what the
//! harness measures is the process under test, not the harness's own runtime.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A request or a response: its first line, headers (names lower-cased) and body.
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The status code of a response.
    pub fn status(&self) -> u16 {
        self.start_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// Reads one message; `None` at a clean end of stream. A request without Content-Length or
/// chunking has no body; a response without them (`is_response`) runs to the end of the stream.
pub fn read_message(reader: &mut impl BufRead, is_response: bool) -> io::Result<Option<Message>> {
    let start_line = match read_line(reader)? {
        Some(line) if !line.is_empty() => line,
        Some(_) => return Err(invalid("an empty start line")),
        None => return Ok(None),
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| invalid("the stream ended in the headers"))?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("a header without a colon: {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut message = Message {
        start_line,
        headers,
        body: Vec::new(),
    };
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let size_line =
                read_line(reader)?.ok_or_else(|| invalid("the stream ended in a chunk"))?;
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| invalid(format!("a bad chunk size: {size_line:?}")))?;
            if size == 0 {
                // Trailers, then the empty line.
                while let Some(line) = read_line(reader)? {
                    if line.is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = message.body.len();
            message.body.resize(start + size, 0);
            reader.read_exact(&mut message.body[start..])?;
            read_line(reader)?;
        }
    } else if let Some(length) = message.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid(format!("a bad Content-Length: {length:?}")))?;
        message.body.resize(length, 0);
        reader.read_exact(&mut message.body)?;
    } else if is_response && message.status() != 204 && message.status() != 304 {
        reader.read_to_end(&mut message.body)?;
    }
    Ok(Some(message))
}

/// A keep-alive HTTP/1.1 client for one server (`host:port`), reconnecting once when the server
/// closed the connection between two requests.
pub struct Client {
    authority: String,
    connection: Option<(BufReader<TcpStream>, TcpStream)>,
}

impl Client {
    pub fn new(authority: &str) -> Client {
        Client {
            authority: authority.to_owned(),
            connection: None,
        }
    }

    fn connect(&mut self) -> io::Result<&mut (BufReader<TcpStream>, TcpStream)> {
        if self.connection.is_none() {
            let stream = TcpStream::connect(&self.authority)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(60)))?;
            let reader = BufReader::new(stream.try_clone()?);
            self.connection = Some((reader, stream));
        }
        self.connection
            .as_mut()
            .ok_or_else(|| io::Error::other("no connection"))
    }

    fn try_request(&mut self, head: &[u8], body: &[u8]) -> io::Result<Message> {
        let (reader, writer) = self.connect()?;
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head);
        request.extend_from_slice(body);
        writer.write_all(&request)?;
        let response = read_message(reader, true)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no response"))?;
        if response
            .header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
        {
            self.connection = None;
        }
        Ok(response)
    }

    /// Sends one request and reads its response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Message> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {}\r\n",
            self.authority,
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let reused = self.connection.is_some();
        match self.try_request(head.as_bytes(), body) {
            Ok(response) => Ok(response),
            Err(_) if reused => {
                // The server may have closed an idle connection: one retry on a new one.
                self.connection = None;
                self.try_request(head.as_bytes(), body)
            }
            Err(e) => {
                self.connection = None;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_content_length_chunked_and_to_the_end() {
        let text = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\n";
        let mut reader = BufReader::new(text.as_bytes());
        let first = read_message(&mut reader, false).unwrap().unwrap();
        assert_eq!(first.body, b"abc");
        let second = read_message(&mut reader, false).unwrap().unwrap();
        assert_eq!(second.start_line, "GET /b HTTP/1.1");
        assert!(second.body.is_empty());
        assert!(read_message(&mut reader, false).unwrap().is_none());

        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let message = read_message(&mut BufReader::new(chunked.as_bytes()), true)
            .unwrap()
            .unwrap();
        assert_eq!(message.status(), 200);
        assert_eq!(message.body, b"abcde");

        let to_end = "HTTP/1.0 200 OK\r\n\r\nall of it";
        let message = read_message(&mut BufReader::new(to_end.as_bytes()), true)
            .unwrap()
            .unwrap();
        assert_eq!(message.body, b"all of it");
    }
}
