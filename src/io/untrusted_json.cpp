#include "io/untrusted_json.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace lowbit {

namespace {

template <typename Json>
Expected<Json> parse_limited(std::string_view text, const std::string& where) {
  // The callback runs for every token; `depth` is the nesting level nlohmann
  // reports at each object/array start. Throwing stops the parse at once,
  // before any deeper value is built.
  struct TooDeep {};
  try {
    Json doc = Json::parse(
        text.begin(), text.end(),
        [](int depth, typename Json::parse_event_t event, Json&) {
          if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
              depth >= kMaxUntrustedJsonDepth) {
            throw TooDeep{};
          }
          return true;
        });
    return doc;
  } catch (const TooDeep&) {
    return make_error("{}: JSON nested deeper than {} levels", where, kMaxUntrustedJsonDepth);
  } catch (const nlohmann::json::exception& e) {
    return make_error("{}: invalid JSON: {}", where, e.what());
  }
}

}  // namespace

Expected<nlohmann::json> parse_untrusted_json(std::string_view text, const std::string& where) {
  return parse_limited<nlohmann::json>(text, where);
}

Expected<nlohmann::ordered_json> parse_untrusted_ordered_json(std::string_view text, const std::string& where) {
  return parse_limited<nlohmann::ordered_json>(text, where);
}

std::string describe_json(const nlohmann::json& v) {
  constexpr size_t kMaxString = 40;
  switch (v.type()) {
    case nlohmann::json::value_t::array:
      return fmt::format("an array of {} element{}", v.size(), v.size() == 1 ? "" : "s");
    case nlohmann::json::value_t::object:
      return fmt::format("an object with {} key{}", v.size(), v.size() == 1 ? "" : "s");
    case nlohmann::json::value_t::string: {
      const std::string& s = v.get_ref<const std::string&>();
      // dump() throws on invalid UTF-8, so the excerpt is cut before a
      // character, never inside one (continuation bytes are 10xxxxxx), and any
      // byte that is still invalid is replaced rather than thrown on.
      size_t cut = std::min(s.size(), kMaxString);
      while (cut > 0 && cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
      const std::string excerpt =
          nlohmann::json(s.substr(0, cut)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return cut == s.size() ? excerpt : excerpt + "...";
    }
    case nlohmann::json::value_t::binary:
      return "binary data";
    case nlohmann::json::value_t::discarded:
      return "invalid JSON";
    default:
      return v.dump();  // null, boolean, number: short by construction
  }
}

std::string dump_json(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string dump_json(const nlohmann::ordered_json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace lowbit
