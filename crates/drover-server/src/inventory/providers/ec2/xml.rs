//! Reading `DescribeInstances` answers and EC2 error bodies.
//!
//! Only direct children are read at each level: EC2 nests elements of the same names
//! (`privateIpAddress` also appears under `networkInterfaceSet`).

use std::collections::BTreeMap;

use drover_proto::inventory::DiscoveredHost;
use roxmltree::{Document, Node};

/// Why an answer could not be read.
#[derive(Debug, PartialEq)]
pub(super) enum XmlError {
    /// Not XML, or not a `DescribeInstancesResponse`.
    Invalid(String),
    /// A required element is missing; the path names it.
    Missing(String),
}

/// One page of `DescribeInstances`.
#[derive(Debug)]
pub(super) struct Page {
    /// Instances on the page, without the terminated and shutting-down ones.
    pub hosts: Vec<DiscoveredHost>,
    /// Token of the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// The `Code` and `Message` of an EC2 error body
/// (`<Response><Errors><Error><Code>…</Code><Message>…</Message>`).
#[derive(Debug, PartialEq)]
pub(super) struct RemoteError {
    /// Error code, e.g. `AuthFailure`.
    pub code: Option<String>,
    /// Error message.
    pub message: Option<String>,
}

/// Reads one page; `default_region` is used for instances without an availability zone.
pub(super) fn parse_page(xml: &str, default_region: &str) -> Result<Page, XmlError> {
    let doc =
        Document::parse(xml).map_err(|e| XmlError::Invalid(format!("response is not XML: {e}")))?;
    let root = doc.root_element();
    let root_name = root.tag_name().name();
    if root_name != "DescribeInstancesResponse" {
        return Err(XmlError::Invalid(format!(
            "expected <DescribeInstancesResponse>, got <{root_name}>"
        )));
    }
    let next_token = text(root, "nextToken").map(str::to_string);
    let reservations = child(root, "reservationSet")
        .ok_or_else(|| XmlError::Missing("DescribeInstancesResponse.reservationSet".into()))?;
    let mut hosts = Vec::new();
    for (r, reservation) in items(reservations).enumerate() {
        let at = format!("reservationSet.item[{r}]");
        let instances = child(reservation, "instancesSet")
            .ok_or_else(|| XmlError::Missing(format!("{at}.instancesSet")))?;
        for (i, instance) in items(instances).enumerate() {
            let at = format!("{at}.instancesSet.item[{i}]");
            if let Some(host) = parse_instance(instance, default_region, &at)? {
                hosts.push(host);
            }
        }
    }
    Ok(Page { hosts, next_token })
}

/// One instance; `None` when it is terminated or shutting down.
fn parse_instance(
    node: Node,
    default_region: &str,
    at: &str,
) -> Result<Option<DiscoveredHost>, XmlError> {
    let missing = |what: &str| XmlError::Missing(format!("{at}.{what}"));
    let id = text(node, "instanceId").ok_or_else(|| missing("instanceId"))?;
    let state = child(node, "instanceState")
        .and_then(|s| text(s, "name"))
        .ok_or_else(|| missing("instanceState.name"))?;
    if state == "terminated" || state == "shutting-down" {
        return Ok(None);
    }
    let labels: BTreeMap<String, String> = child(node, "tagSet")
        .map(|set| {
            items(set)
                .filter_map(|tag| {
                    let key = text(tag, "key")?;
                    Some((
                        key.to_string(),
                        text(tag, "value").unwrap_or("").to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let private_dns = text(node, "privateDnsName");
    let public_ip = text(node, "ipAddress");
    let zone = child(node, "placement").and_then(|p| text(p, "availabilityZone"));
    let name = labels
        .get("Name")
        .map(String::as_str)
        .filter(|n| !n.is_empty())
        .or(private_dns)
        .unwrap_or(id);
    let mut attributes = BTreeMap::new();
    let mut put = |key: &str, value: Option<&str>| {
        if let Some(v) = value {
            attributes.insert(key.to_string(), v.to_string());
        }
    };
    put("instance_type", text(node, "instanceType"));
    put("state", Some(state));
    put("image_id", text(node, "imageId"));
    put("availability_zone", zone);
    put("public_ip", public_ip);
    put("private_dns", private_dns);
    Ok(Some(DiscoveredHost {
        id: id.to_string(),
        name: name.to_string(),
        address: text(node, "privateIpAddress")
            .or(public_ip)
            .map(str::to_string),
        region: Some(zone.unwrap_or(default_region).to_string()),
        labels,
        attributes,
    }))
}

/// The first `Error` element's `Code` and `Message`; `None` when the body is not XML or
/// has no `Error`.
pub(super) fn parse_error(xml: &str) -> Option<RemoteError> {
    let doc = Document::parse(xml).ok()?;
    let error = doc
        .descendants()
        .find(|n| n.is_element() && n.tag_name().name() == "Error")?;
    Some(RemoteError {
        code: text(error, "Code").map(str::to_string),
        message: text(error, "Message").map(str::to_string),
    })
}

/// The first child element named `name`.
fn child<'a, 'input>(node: Node<'a, 'input>, name: &str) -> Option<Node<'a, 'input>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// The trimmed, non-empty text of the child element `name`.
fn text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name)?
        .text()
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The `item` children of a set.
fn items<'a, 'input>(set: Node<'a, 'input>) -> impl Iterator<Item = Node<'a, 'input>> {
    set.children()
        .filter(|n| n.is_element() && n.tag_name().name() == "item")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the `DescribeInstances` example of the EC2 API reference, with the
    /// nested `networkInterfaceSet` that repeats element names.
    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1234567890abcdef0</reservationId>
      <instancesSet>
        <item>
          <instanceId>i-1234567890abcdef0</instanceId>
          <imageId>ami-bff32ccc</imageId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateDnsName>ip-192-168-1-88.eu-west-1.compute.internal</privateDnsName>
          <instanceType>t2.micro</instanceType>
          <placement><availabilityZone>eu-west-1c</availabilityZone><tenancy>default</tenancy></placement>
          <networkInterfaceSet>
            <item><privateIpAddress>192.168.9.9</privateIpAddress></item>
          </networkInterfaceSet>
          <privateIpAddress>192.168.1.88</privateIpAddress>
          <ipAddress>54.194.252.215</ipAddress>
          <tagSet>
            <item><key>Name</key><value>web-1</value></item>
            <item><key>role</key><value>web</value></item>
            <item><key>empty</key><value/></item>
          </tagSet>
        </item>
        <item>
          <instanceId>i-0000000000000000a</instanceId>
          <imageId>ami-bff32ccc</imageId>
          <instanceState><code>48</code><name>terminated</name></instanceState>
          <instanceType>t2.micro</instanceType>
        </item>
      </instancesSet>
    </item>
    <item>
      <reservationId>r-2</reservationId>
      <instancesSet>
        <item>
          <instanceId>i-0000000000000000b</instanceId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateDnsName>ip-10-0-0-2.ec2.internal</privateDnsName>
          <privateIpAddress>10.0.0.2</privateIpAddress>
          <instanceType>m5.large</instanceType>
        </item>
        <item>
          <instanceId>i-0000000000000000c</instanceId>
          <instanceState><code>32</code><name>shutting-down</name></instanceState>
        </item>
        <item>
          <instanceId>i-0000000000000000d</instanceId>
          <instanceState><code>80</code><name>stopped</name></instanceState>
          <privateDnsName/>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
  <nextToken>eyJ2IjoiMiJ9</nextToken>
</DescribeInstancesResponse>"#;

    #[test]
    fn reads_instances_and_skips_terminated() {
        let page = parse_page(PAGE, "eu-west-1").unwrap();
        assert_eq!(page.next_token.as_deref(), Some("eyJ2IjoiMiJ9"));
        let ids: Vec<&str> = page.hosts.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "i-1234567890abcdef0",
                "i-0000000000000000b",
                "i-0000000000000000d"
            ]
        );
        let web = &page.hosts[0];
        assert_eq!(web.name, "web-1");
        assert_eq!(web.address.as_deref(), Some("192.168.1.88"));
        assert_eq!(web.region.as_deref(), Some("eu-west-1c"));
        assert_eq!(web.labels["role"], "web");
        assert_eq!(web.labels["empty"], "");
        assert_eq!(web.attributes["instance_type"], "t2.micro");
        assert_eq!(web.attributes["state"], "running");
        assert_eq!(web.attributes["image_id"], "ami-bff32ccc");
        assert_eq!(web.attributes["availability_zone"], "eu-west-1c");
        assert_eq!(web.attributes["public_ip"], "54.194.252.215");
        assert_eq!(
            web.attributes["private_dns"],
            "ip-192-168-1-88.eu-west-1.compute.internal"
        );
        // No Name tag: the private DNS name; no zone: the provider's region.
        let b = &page.hosts[1];
        assert_eq!(b.name, "ip-10-0-0-2.ec2.internal");
        assert_eq!(b.region.as_deref(), Some("eu-west-1"));
        assert!(!b.attributes.contains_key("public_ip"));
        // Neither: the instance id.
        let d = &page.hosts[2];
        assert_eq!(d.name, "i-0000000000000000d");
        assert_eq!(d.address, None);
        assert!(!d.attributes.contains_key("private_dns"));
    }

    #[test]
    fn last_page_has_no_token() {
        let xml = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
            <reservationSet/><nextToken/></DescribeInstancesResponse>"#;
        let page = parse_page(xml, "r").unwrap();
        assert!(page.hosts.is_empty());
        assert_eq!(page.next_token, None);
    }

    #[test]
    fn missing_instance_id_names_the_path() {
        let xml = r#"<DescribeInstancesResponse><reservationSet><item><instancesSet>
            <item><instanceState><name>running</name></instanceState></item>
            </instancesSet></item></reservationSet></DescribeInstancesResponse>"#;
        assert_eq!(
            parse_page(xml, "r").unwrap_err(),
            XmlError::Missing("reservationSet.item[0].instancesSet.item[0].instanceId".into())
        );
        let xml = "<DescribeInstancesResponse><requestId>x</requestId></DescribeInstancesResponse>";
        assert_eq!(
            parse_page(xml, "r").unwrap_err(),
            XmlError::Missing("DescribeInstancesResponse.reservationSet".into())
        );
    }

    #[test]
    fn not_xml_or_wrong_root() {
        assert!(
            matches!(parse_page("{\"a\":1}", "r"), Err(XmlError::Invalid(m)) if m.starts_with("response is not XML"))
        );
        assert_eq!(
            parse_page("<ListAllMyBucketsResult/>", "r").unwrap_err(),
            XmlError::Invalid(
                "expected <DescribeInstancesResponse>, got <ListAllMyBucketsResult>".into()
            )
        );
    }

    #[test]
    fn reads_error_bodies() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>The filter 'bogus' is invalid</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"#;
        assert_eq!(
            parse_error(xml),
            Some(RemoteError {
                code: Some("InvalidParameterValue".into()),
                message: Some("The filter 'bogus' is invalid".into()),
            })
        );
        assert_eq!(parse_error("<html><body>oops</body></html>"), None);
        assert_eq!(parse_error("not xml"), None);
    }
}
