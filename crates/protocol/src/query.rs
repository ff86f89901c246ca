use std::borrow::Cow;

use crate::{ApiError, ErrorCode};

/// The query string of a REST call: `sdkappid`, `identifier`, `usersig`, `random`,
/// `contenttype`. Parsing checks only what docs/behaviour.md §2 row 3 asks (the URL's own format);
/// the accessors answer rows 4, 7 and 8 when the server asks for each in turn.
/// Borrows from the request's URI: a decoded copy only for a value that held an escape.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RestQuery<'a> {
    sdkappid: Option<Cow<'a, str>>,
    identifier: Option<Cow<'a, str>>,
    usersig: Option<Cow<'a, str>>,
}

fn bad_url(info: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidHttpUrl, info)
}

impl<'a> RestQuery<'a> {
    /// Parses a raw (percent-encoded) query string. A parameter named twice is refused rather
    /// than guessing which one the caller meant.
    pub fn parse(raw: Option<&'a str>) -> Result<Self, ApiError> {
        let mut query = Self::default();
        let mut random = None;
        let mut contenttype = None;
        for (name, value) in pairs(raw.unwrap_or("")) {
            let slot = match name.as_ref() {
                "sdkappid" => &mut query.sdkappid,
                "identifier" => &mut query.identifier,
                "usersig" => &mut query.usersig,
                "random" => &mut random,
                "contenttype" => &mut contenttype,
                _ => continue,
            };
            if slot.is_some() {
                return Err(bad_url(format!("query parameter {name} is repeated")));
            }
            *slot = Some(value);
        }
        if contenttype.as_deref().is_some_and(|c| c != "json") {
            return Err(bad_url("contenttype must be json"));
        }
        if random.as_deref().is_some_and(|r| !is_decimal_u32(r)) {
            return Err(bad_url("random must be a decimal 32-bit unsigned integer"));
        }
        Ok(query)
    }

    /// Row 4 (missing: 60012), then the number itself (60006).
    pub fn sdkappid(&self) -> Result<u32, ApiError> {
        let raw = non_empty(&self.sdkappid)
            .ok_or_else(|| ApiError::new(ErrorCode::SdkAppIdMiss, "sdkappid is missing"))?;
        if !is_decimal_u32(raw) {
            return Err(ApiError::new(
                ErrorCode::InvalidSdkAppId,
                "sdkappid is not a decimal 32-bit unsigned integer",
            ));
        }
        raw.parse()
            .map_err(|_| ApiError::new(ErrorCode::InvalidSdkAppId, "sdkappid is out of range"))
    }

    /// Row 7.
    pub fn identifier(&self) -> Result<&str, ApiError> {
        non_empty(&self.identifier)
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidAccount, "identifier is missing"))
    }

    /// Row 8.
    pub fn usersig(&self) -> Result<&str, ApiError> {
        non_empty(&self.usersig)
            .ok_or_else(|| ApiError::new(ErrorCode::UserSigEmpty, "usersig is missing"))
    }
}

/// The query's `name=value` pairs, decoded as `application/x-www-form-urlencoded`. Real
/// queries (a UserSig is URL-safe by design) rarely hold an escape, and then every pair is its
/// own decoding: borrowed, without the decoder's scan and UTF-8 repair, which measurably cost a
/// few percent of a cached read.
fn pairs(raw: &str) -> Box<dyn Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> + '_> {
    if raw.contains(['%', '+']) {
        return Box::new(form_urlencoded::parse(raw.as_bytes()));
    }
    Box::new(raw.split('&').filter(|pair| !pair.is_empty()).map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (Cow::Borrowed(name), Cow::Borrowed(value))
    }))
}

fn non_empty<'v>(value: &'v Option<Cow<'_, str>>) -> Option<&'v str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn is_decimal_u32(raw: &str) -> bool {
    !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && raw.parse::<u32>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str) -> Option<u32> {
        RestQuery::parse(Some(raw)).err().map(|e| e.code.number())
    }

    #[test]
    fn url_format_checks() {
        assert_eq!(code("sdkappid=1&random=99999999&contenttype=json"), None);
        assert_eq!(code("contenttype=xml"), Some(60002));
        assert_eq!(code("random=4294967296"), Some(60002));
        assert_eq!(code("random=-1"), Some(60002));
        assert_eq!(code("random=+1"), Some(60002));
        assert_eq!(code("random="), Some(60002));
        assert_eq!(code("sdkappid=1&sdkappid=2"), Some(60002));
        assert_eq!(code("random=4294967295&other=x&other=y"), None);
    }

    #[test]
    fn credentials_in_order() {
        let q = RestQuery::parse(Some("identifier=admin&usersig=abc")).unwrap();
        assert_eq!(q.sdkappid().unwrap_err().code, ErrorCode::SdkAppIdMiss);
        let q = RestQuery::parse(Some("sdkappid=&identifier=admin")).unwrap();
        assert_eq!(q.sdkappid().unwrap_err().code, ErrorCode::SdkAppIdMiss);
        let q = RestQuery::parse(Some("sdkappid=14e8")).unwrap();
        assert_eq!(q.sdkappid().unwrap_err().code, ErrorCode::InvalidSdkAppId);
        let q = RestQuery::parse(Some("sdkappid=4294967296")).unwrap();
        assert_eq!(q.sdkappid().unwrap_err().code, ErrorCode::InvalidSdkAppId);
        let q = RestQuery::parse(Some("sdkappid=1400000000&usersig=")).unwrap();
        assert_eq!(q.sdkappid().unwrap(), 1_400_000_000);
        assert_eq!(q.identifier().unwrap_err().code, ErrorCode::InvalidAccount);
        assert_eq!(q.usersig().unwrap_err().code, ErrorCode::UserSigEmpty);
    }

    #[test]
    fn the_plain_query_path_splits_as_the_decoder_does() {
        for raw in [
            "",
            "&",
            "a",
            "a=",
            "=b",
            "a=b=c",
            "&&a=1&&b=2&",
            "a=1&a",
            "é=ü&x=*-_.",
        ] {
            let plain: Vec<_> = pairs(raw).collect();
            let decoded: Vec<_> = form_urlencoded::parse(raw.as_bytes()).collect();
            assert_eq!(plain, decoded, "{raw:?}");
        }
    }

    #[test]
    fn percent_decoding() {
        let q = RestQuery::parse(Some("identifier=a%20b&usersig=x%2Ay")).unwrap();
        assert_eq!(q.identifier().unwrap(), "a b");
        assert_eq!(q.usersig().unwrap(), "x*y");
    }
}
