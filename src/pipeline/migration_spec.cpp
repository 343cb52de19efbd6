#include "pipeline/migration_spec.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "io/untrusted_json.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

Status check_keys(const json& j, const std::set<std::string>& known, const std::string& where) {
  if (!j.is_object()) return make_error("{}: must be an object", where);
  for (const auto& [key, value] : j.items()) {
    if (known.count(key) == 0) {
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
      return make_error("{}: unknown key '{}' (known: {})", where, key, list);
    }
  }
  return Status::ok_status();
}

Status read_int(const json& j, const char* key, int& field, int lo, int hi, const std::string& where) {
  if (!j.contains(key)) return Status::ok_status();
  const json& v = j[key];
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
    return make_error("{}: '{}' must be an integer in [{}, {}], got {}", where, key, lo, hi, describe_json(v));
  }
  field = v.get<int>();
  return Status::ok_status();
}

Status read_groups(const json& j, std::vector<AwqGroup>& groups, bool shift_only, const std::string& where) {
  if (!j.contains("groups")) return Status::ok_status();
  if (!j["groups"].is_array() || j["groups"].empty()) return make_error("{}: 'groups' must be a non-empty array", where);
  groups.clear();
  for (const json& g : j["groups"]) {
    if (!g.is_string()) return make_error("{}: 'groups' holds names, got {}", where, describe_json(g));
    LB_ASSIGN_OR_RETURN(AwqGroup group, migration_group_from_key(g.get<std::string>(), where));
    if (shift_only && group == AwqGroup::kDown) {
      return make_error("{}: group \"{}\" cannot be shifted exactly (OS+ takes \"qkv\", \"out\" and \"gateup\")",
                        where, g.get<std::string>());
    }
    if (std::find(groups.begin(), groups.end(), group) != groups.end()) {
      return make_error("{}: group \"{}\" named twice", where, g.get<std::string>());
    }
    groups.push_back(group);
  }
  return Status::ok_status();
}

}  // namespace

const char* migration_group_key(AwqGroup g) {
  switch (g) {
    case AwqGroup::kQkv: return "qkv";
    case AwqGroup::kOut: return "out";
    case AwqGroup::kGateUp: return "gateup";
    case AwqGroup::kDown: return "down";
  }
  return "?";
}

Expected<AwqGroup> migration_group_from_key(const std::string& key, const std::string& where) {
  for (AwqGroup g : {AwqGroup::kQkv, AwqGroup::kOut, AwqGroup::kGateUp, AwqGroup::kDown}) {
    if (key == migration_group_key(g)) return g;
  }
  return make_error("{}: unknown group \"{}\" (known: qkv, out, gateup, down)", where, key);
}

Expected<SmoothSpec> parse_smooth_spec(const json& j, const std::string& where) {
  LB_RETURN_IF_ERROR(check_keys(j, {"alpha", "search", "grid", "tokens", "groups"}, where));
  SmoothSpec s;
  if (j.contains("alpha")) {
    const double a = j["alpha"].is_number() ? j["alpha"].get<double>() : std::nan("");
    if (!(a >= 0.0 && a <= 1.0)) return make_error("{}: 'alpha' must be a number in [0, 1], got {}", where,
                                                   describe_json(j["alpha"]));
    s.alpha = static_cast<float>(a);
  }
  if (j.contains("search")) {
    if (!j["search"].is_boolean()) return make_error("{}: 'search' must be true or false", where);
    s.search = j["search"].get<bool>();
  }
  LB_RETURN_IF_ERROR(read_int(j, "grid", s.grid, 1, 1000, where));
  LB_RETURN_IF_ERROR(read_int(j, "tokens", s.tokens, 1, 1 << 20, where));
  LB_RETURN_IF_ERROR(read_groups(j, s.groups, false, where));
  return s;
}

Expected<OspSpec> parse_osp_spec(const json& j, const std::string& where) {
  LB_RETURN_IF_ERROR(check_keys(j, {"grid", "tokens", "groups"}, where));
  OspSpec s;
  LB_RETURN_IF_ERROR(read_int(j, "grid", s.grid, 1, 1000, where));
  LB_RETURN_IF_ERROR(read_int(j, "tokens", s.tokens, 1, 1 << 20, where));
  LB_RETURN_IF_ERROR(read_groups(j, s.groups, true, where));
  return s;
}

Status check_migration_groups(const SmoothSpec* smooth, const OspSpec* osp, const std::string& where) {
  if (smooth == nullptr || osp == nullptr) return Status::ok_status();
  for (AwqGroup g : smooth->groups) {
    if (std::find(osp->groups.begin(), osp->groups.end(), g) != osp->groups.end()) {
      return make_error("{}: group \"{}\" is in both \"smooth\" and \"osp\"", where, migration_group_key(g));
    }
  }
  return Status::ok_status();
}

}  // namespace lowbit
