// The deployment record: the stored form of one deployment
// (keyspace::deployments, "dep/{instance_id}"): what a
// restarted registryd needs to run service_action, undeploy and the health
// checks of a package it installed earlier. JSON like every stored record:
// {"instance_id", "target", "home", "dir", "manifest": {"name", "version",
//  "ports": [{"name", "port", "protocol"}], "depends_on": [..],
//  "health": {"script", "interval_ms", "timeout_ms", "deadline_ms"} | null},
//  "owner" (absent: "anonymous"),
//  a container package's: "container": {"id", "node", "address", "manifest_yaml"}}
// (its manifest.yaml kept verbatim: the container's image, command, env,
// limits and checks, for service_action start after a restart)
#pragma once

#include <registry/deploy/package_manifest.hpp>
#include <registry/result.hpp>

#include <string>
#include <string_view>

namespace registry::detail {

struct deployment_record {
    std::string instance_id;
    std::string target;  // a deploy_target's name
    std::string home;    // {prefix}/{sanitized-name}
    std::string dir;     // {prefix}/{sanitized-name}-{version}
    deploy::package_manifest manifest;  // the fields the scripts and the registration use
    std::string owner = "anonymous";    // who deployed it; a record without one: anonymous's
    // A container package (manifest.is_container()): its container (empty
    // id: stopped by service_action), node and address.
    std::string container_id{};
    std::string node{};
    std::string address{};
};

std::string encode_deployment_record(const deployment_record& r);

// Parses what encode_deployment_record wrote. invalid_request with the
// field's path otherwise.
result<deployment_record> decode_deployment_record(std::string_view json);

}  // namespace registry::detail
