// Unit: keys flared stores that a text line cannot frame (issue 17, parts 1 and 2).
#include "flare_tools.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

using namespace flare;

namespace {

std::vector<Item> read_file(const std::string& bytes, DataFormat f) {
  char path[] = "/tmp/flare-framing-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  ::lseek(fd, 0, SEEK_SET);
  ::unlink(path);
  ItemReader r(fd, "test", f);
  std::vector<Item> out;
  Item i;
  while (r.next(i)) out.push_back(i);
  return out;
}

std::string what(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

} // namespace

TEST_CASE("framing: a VALUE line's key may hold a lone CR, TAB, VT, FF, control and high bytes") {
  for (std::string key : {"k\rD", "t\tab", "v\x0b" "f\x0c", "c\x01\xff", "endcr\r", "\rstart", "lf\nx"}) {
    CAPTURE(key);
    ItemHeader h = parse_value_line("VALUE " + key + " 3 2 1 0");
    CHECK(h.key == key);
    CHECK(h.flags == 3);
    CHECK(h.length == 2);
  }
}

TEST_CASE("framing: a VALUE line of the wrong shape names the real reason") {
  CHECK(what([] { parse_value_line("VALUE c"); }).find("too few fields: the key may hold CR LF") != std::string::npos);
  CHECK(what([] { parse_value_line("VALUE sp ace 0 1 1 0"); }).find("the key holds a space") != std::string::npos);
  // One space between fields, exactly: a key with a leading or trailing space is not another key.
  CHECK(what([] { parse_value_line("VALUE  a 0 1 1 0"); }).find("the key holds a space") != std::string::npos);
  CHECK(what([] { parse_value_line("VALUE a  0 1 1 0"); }).find("the key holds a space") != std::string::npos);
  CHECK(what([] { parse_value_line(std::string("VALUE a\0b 0 1 1 0", 17)); }).find("NUL byte") != std::string::npos);
  CHECK(what([] { parse_value_line("VALUE a 0 x 1 0"); }).find("expected VALUE key flags length version expire") !=
        std::string::npos);
}

TEST_CASE("framing: a dump file's line ends at CR LF only, so a lone CR or LF stays in the key") {
  auto items = read_file("VALUE k\rD 0 2 1 0\r\nhi\r\nVALUE lf\nx 0 1 1 0\r\nv\r\nVALUE endcr\r 0 1 1 0\r\nw\r\nEND\r\n",
                         DataFormat::flare);
  REQUIRE(items.size() == 3);
  CHECK(items[0].header.key == "k\rD");
  CHECK(items[1].header.key == "lf\nx");
  CHECK(items[2].header.key == "endcr\r");
  CHECK(items[2].data == "w");
}

TEST_CASE("framing: a CSV cell keeps a key's lone CR (quoted)") {
  auto items = read_file("key,flag,len,version,expire,data,encoding\r\n\"k\rD\",0,2,1,0,hi,\r\n", DataFormat::csv);
  REQUIRE(items.size() == 1);
  CHECK(items[0].header.key == "k\rD");
}

TEST_CASE("framing: restore names why the text protocol cannot take a key") {
  CHECK(text_key_problem("k\rD").empty());
  CHECK(text_key_problem("c\x01\xff").empty());
  CHECK(text_key_problem("sp ace").find("holds a space") != std::string::npos);
  CHECK(text_key_problem("lf\nx").find("holds a line feed") != std::string::npos);
  CHECK(text_key_problem(std::string(8192, 'k')).find("at most 8191 bytes") != std::string::npos);
}

TEST_CASE("framing: a CSV key that no flare dump frames (CR LF, a space) is refused, naming why") {
  const std::string head = "key,flag,len,version,expire,data,encoding\r\n";
  // Found by fuzz_csv: such a key, written in the flare format, did not read back.
  CHECK(what([&] { read_file(head + "\"c\r\nEND\",0,2,1,0,hi,\r\n", DataFormat::csv); }).find("the key holds CR LF") !=
        std::string::npos);
  CHECK(what([&] { read_file(head + "\"sp ace\",0,2,1,0,hi,\r\n", DataFormat::csv); }).find("the key holds a space") !=
        std::string::npos);
  CHECK_FALSE(valid_item_key("c\r\nEND"));
  CHECK(valid_item_key("k\rD"));
  CHECK(valid_item_key("lf\nx"));
}
