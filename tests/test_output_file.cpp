// Unit: OutputFile and write_file_atomically, the way every file of the tools is written.
#include <doctest/doctest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "flare_tools.hpp"

namespace {

std::string unit_temp_dir() {
  char tmpl[] = "/tmp/flare-unit-XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  return tmpl;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The number of names in a folder (hidden ones included).
size_t entries(const std::string& dir) {
  size_t n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) n += std::string(e->d_name) != "." && std::string(e->d_name) != "..";
    ::closedir(d);
  }
  return n;
}

void remove_dir(const std::string& dir) { CHECK(std::system(("rm -rf '" + dir + "'").c_str()) == 0); }

} // namespace

TEST_CASE("an OutputFile is invisible until committed, then whole, with exactly its mode") {
  std::string dir = unit_temp_dir(), path = dir + "/out";
  {
    flare::OutputFile f(path, 0640);
    CHECK_FALSE(f.in_place());
    CHECK(f.temp_path().rfind(dir + "/.out.", 0) == 0);
    CHECK(f.temp_path().size() == (dir + "/.out.flare-tmp-" + std::to_string(::getpid()) + ".XXXXXX").size());
    CHECK(f.temp_path().find(".flare-tmp-" + std::to_string(::getpid()) + ".") != std::string::npos);
    CHECK(::access(path.c_str(), F_OK) != 0);
    REQUIRE(::write(f.fd(), "abc", 3) == 3);
    struct stat st {};
    REQUIRE(::stat(f.temp_path().c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600); // private while being written
    f.commit();
    CHECK(f.committed());
  }
  CHECK(read_all(path) == "abc");
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(entries(dir) == 1);
  remove_dir(dir);
}

TEST_CASE("an OutputFile destroyed uncommitted removes its temporary and leaves the old file") {
  std::string dir = unit_temp_dir(), path = dir + "/out";
  flare::write_file_atomically(path, "old");
  {
    flare::OutputFile f(path);
    REQUIRE(::write(f.fd(), "new", 3) == 3);
  }
  CHECK(read_all(path) == "old");
  CHECK(entries(dir) == 1);
  remove_dir(dir);
}

TEST_CASE("write_file_atomically replaces a symbolic link and a dangling one, and never writes through them") {
  std::string dir = unit_temp_dir(), path = dir + "/out", victim = dir + "/victim";
  flare::write_file_atomically(victim, "precious");
  SUBCASE("a link to a file") { REQUIRE(::symlink(victim.c_str(), path.c_str()) == 0); }
  SUBCASE("a dangling link") { REQUIRE(::symlink((dir + "/nowhere").c_str(), path.c_str()) == 0); }
  flare::write_file_atomically(path, "mine");
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(read_all(path) == "mine");
  CHECK(read_all(victim) == "precious");
  CHECK(::access((dir + "/nowhere").c_str(), F_OK) != 0);
  remove_dir(dir);
}

TEST_CASE("an OutputFile refuses what it cannot write whole, naming the reason") {
  std::string dir = unit_temp_dir();
  SUBCASE("a folder") { CHECK_THROWS_WITH_AS(flare::OutputFile{dir}, ("'" + dir + "' is a directory").c_str(), flare::Error); }
  SUBCASE("a folder through a link") {
    REQUIRE(::symlink(dir.c_str(), (dir + "/d").c_str()) == 0);
    CHECK_THROWS_WITH_AS(flare::OutputFile{dir + "/d"}, ("'" + dir + "/d' is a directory (through a symbolic link)").c_str(),
                         flare::Error);
  }
  SUBCASE("a missing folder") {
    CHECK_THROWS_WITH_AS(flare::OutputFile{dir + "/no/out"},
                         ("cannot create a file in '" + dir + "/no/' for '" + dir + "/no/out': No such file or directory").c_str(),
                         flare::Error);
  }
  SUBCASE("an empty name") { CHECK_THROWS_AS(flare::OutputFile{""}, flare::Error); }
  remove_dir(dir);
}

TEST_CASE("a character device is written in place, not replaced") {
  {
    flare::OutputFile f("/dev/null");
    CHECK(f.in_place());
    CHECK(f.temp_path().empty());
    REQUIRE(::write(f.fd(), "x", 1) == 1);
    f.commit();
  }
  struct stat st {};
  REQUIRE(::stat("/dev/null", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
}

TEST_CASE("a very long file name still gets a temporary within NAME_MAX") {
  std::string dir = unit_temp_dir(), path = dir + "/" + std::string(250, 'n');
  flare::write_file_atomically(path, "long");
  CHECK(read_all(path) == "long");
  CHECK(entries(dir) == 1);
  remove_dir(dir);
}

TEST_CASE("leftover_temporaries names only our temporaries whose writer is gone, and removes nothing") {
  std::string dir = unit_temp_dir();
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) ::_exit(0);
  int st = 0;
  ::waitpid(child, &st, 0);
  const std::string dead = dir + "/.f.flare-tmp-" + std::to_string(child) + ".Ab12Cd";
  const std::string live = dir + "/.g.flare-tmp-" + std::to_string(::getpid()) + ".Ab12Cd";
  const std::string parent = dir + "/.h.flare-tmp-" + std::to_string(::getppid()) + ".Ab12Cd";
  for (const auto& p : {dead, live, parent, dir + "/.f.Ab12Cd", dir + "/.f.flare-tmp-12x.Ab12Cd", dir + "/.f.flare-tmp-" +
                                                                                                     std::to_string(child) + ".short"}) {
    std::ofstream(p) << "12345";
  }
  REQUIRE(::mkdir((dir + "/.d.flare-tmp-" + std::to_string(child) + ".Zz99Yy").c_str(), 0700) == 0); // not a file
  auto left = flare::leftover_temporaries(dir);
  REQUIRE(left.size() == 1);
  CHECK(left[0].path == dead);
  CHECK(left[0].bytes == 5);
  CHECK(left[0].pid == static_cast<long>(child));
  CHECK(::access(dead.c_str(), F_OK) == 0);
  CHECK(flare::leftover_temporaries(dir + "/no-such-folder").empty());
  std::string rm = "rm -rf '" + dir + "'";
  CHECK(std::system(rm.c_str()) == 0);
}
