// Unit tests of Catalog (server/catalog.h) on an in-memory store: loading, registration (created, same, conflicting),
// retirement, persistence before publication, immutable snapshots, and store errors leaving the catalogue as it was.
#include "server/catalog.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server/fake_store.h"

namespace accelsel::server {
namespace {

using ::accelsel::testing::FakeStore;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::Strategy Def(const std::string& id, const std::string& engine, const std::string& description = "") {
  v1::Strategy s;
  s.set_id(id);
  auto* c = s.add_components();
  c->set_method("engine");
  c->set_value(engine);
  if (!description.empty()) s.set_description(description);
  return s;
}

std::vector<std::string> Ids(const CatalogSnapshot& snap) {
  std::vector<std::string> ids;
  for (const v1::Strategy& s : snap.protos) ids.push_back(s.id());
  return ids;
}

TEST(CatalogTest, StartsEmptyAndLoadsTheStoredStrategiesOrderedById) {
  FakeStore store;
  ASSERT_TRUE(store.PutStrategy(Def("vllm", "vllm")).ok());
  v1::Strategy retired = Def("deepspeed", "deepspeed");
  retired.set_retired(true);
  ASSERT_TRUE(store.PutStrategy(retired).ok());
  ASSERT_TRUE(store.PutStrategy(Def("llama.cpp", "llama.cpp", "CPU and GPU")).ok());

  Catalog catalog(&store);
  EXPECT_TRUE(catalog.Get()->protos.empty());
  ASSERT_TRUE(catalog.Load().ok());
  auto snap = catalog.Get();
  EXPECT_THAT(Ids(*snap), ElementsAre("deepspeed", "llama.cpp", "vllm"));
  ASSERT_EQ(snap->strategies.size(), 3u);
  EXPECT_EQ(snap->active, 2u);  // retired ones stay in the snapshot but are not active
  EXPECT_TRUE(snap->IsRetired("deepspeed"));
  EXPECT_FALSE(snap->IsRetired("vllm"));
  EXPECT_FALSE(snap->IsRetired("absent"));
  const model::Strategy* found = snap->Find("llama.cpp");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->id, "llama.cpp");
  EXPECT_EQ(found->description, "CPU and GPU");
  ASSERT_EQ(found->components.size(), 1u);
  EXPECT_EQ(found->components[0], std::make_pair(std::string("engine"), std::string("llama.cpp")));
  EXPECT_EQ(snap->Find("absent"), nullptr);
  for (size_t i = 0; i < snap->protos.size(); ++i) {  // protos and strategies stay in the same order
    EXPECT_EQ(snap->strategies[i].id, snap->protos[i].id());
    EXPECT_EQ(snap->index.at(snap->protos[i].id()), i);
  }
}

TEST(CatalogTest, RegisterCreatesOnceAcceptsTheSameDefinitionAndRefusesADifferentOne) {
  FakeStore store;
  Catalog catalog(&store);
  ASSERT_TRUE(catalog.Load().ok());
  auto created = catalog.Register(Def("vllm:fp8", "vllm", "FP8 weights"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(*created);
  EXPECT_EQ(store.strategy_puts(), 1u);

  auto again = catalog.Register(Def("vllm:fp8", "vllm", "FP8 weights"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(*again);
  EXPECT_EQ(store.strategy_puts(), 1u);  // nothing written for a repeat

  auto conflict = catalog.Register(Def("vllm:fp8", "vllm", "another description"));
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(conflict.status().message(), HasSubstr("vllm:fp8"));
  EXPECT_EQ(catalog.Get()->Find("vllm:fp8")->description, "FP8 weights");

  // A fresh catalogue on the same store sees the registration: it was persisted.
  Catalog reloaded(&store);
  ASSERT_TRUE(reloaded.Load().ok());
  EXPECT_THAT(Ids(*reloaded.Get()), ElementsAre("vllm:fp8"));
}

// Whether a component changes the model's outputs is part of the definition: the same id with the flag flipped is
// another definition, and the flag survives the store and reaches the parsed record.
TEST(CatalogTest, LossyIsPartOfTheDefinition) {
  FakeStore store;
  Catalog catalog(&store);
  ASSERT_TRUE(catalog.Load().ok());
  v1::Strategy q4 = Def("llama.cpp:q4_0", "llama.cpp");
  auto* weights = q4.add_components();
  weights->set_method("weights");
  weights->set_value("q4_0");
  weights->set_lossy(true);
  ASSERT_TRUE(catalog.Register(q4).ok());
  ASSERT_TRUE(catalog.Register(Def("llama.cpp:f16", "llama.cpp")).ok());
  EXPECT_TRUE(catalog.Get()->Find("llama.cpp:q4_0")->lossy);
  EXPECT_FALSE(catalog.Get()->Find("llama.cpp:f16")->lossy);

  auto again = catalog.Register(q4);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(*again);
  v1::Strategy flipped = q4;
  flipped.mutable_components(1)->set_lossy(false);
  EXPECT_EQ(catalog.Register(flipped).status().code(), absl::StatusCode::kAlreadyExists);

  Catalog reloaded(&store);
  ASSERT_TRUE(reloaded.Load().ok());
  auto snap = reloaded.Get();
  ASSERT_NE(snap->Find("llama.cpp:q4_0"), nullptr);
  EXPECT_TRUE(snap->Find("llama.cpp:q4_0")->lossy);
  EXPECT_TRUE(snap->protos[snap->index.at("llama.cpp:q4_0")].components(1).lossy());
  EXPECT_FALSE(snap->protos[snap->index.at("llama.cpp:q4_0")].components(0).lossy());
}

TEST(CatalogTest, SnapshotsAlreadyTakenNeverChange) {
  FakeStore store;
  Catalog catalog(&store);
  ASSERT_TRUE(catalog.Register(Def("b", "b")).ok());
  auto before = catalog.Get();
  ASSERT_TRUE(catalog.Register(Def("a", "a")).ok());
  v1::Strategy out;
  ASSERT_TRUE(catalog.SetRetired("b", true, &out).ok());
  EXPECT_THAT(Ids(*before), ElementsAre("b"));
  EXPECT_FALSE(before->IsRetired("b"));
  EXPECT_EQ(before->active, 1u);
  auto after = catalog.Get();
  EXPECT_THAT(Ids(*after), ElementsAre("a", "b"));  // a new registration is placed by id
  EXPECT_TRUE(after->IsRetired("b"));
  EXPECT_EQ(after->active, 1u);
}

TEST(CatalogTest, SetRetiredPersistsTheFlagReportsChangesAndRefusesUnknownIds) {
  FakeStore store;
  Catalog catalog(&store);
  ASSERT_TRUE(catalog.Register(Def("vllm", "vllm", "d")).ok());
  v1::Strategy out;
  auto changed = catalog.SetRetired("vllm", true, &out);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_TRUE(*changed);
  EXPECT_TRUE(out.retired());
  EXPECT_EQ(out.description(), "d");  // the whole definition comes back
  EXPECT_EQ(catalog.Get()->active, 0u);

  auto unchanged = catalog.SetRetired("vllm", true, &out);
  ASSERT_TRUE(unchanged.ok());
  EXPECT_FALSE(*unchanged);

  // A retired strategy stays retired when its definition is registered again.
  auto reregistered = catalog.Register(Def("vllm", "vllm", "d"));
  ASSERT_TRUE(reregistered.ok()) << reregistered.status();
  EXPECT_FALSE(*reregistered);
  EXPECT_TRUE(catalog.Get()->IsRetired("vllm"));

  Catalog reloaded(&store);
  ASSERT_TRUE(reloaded.Load().ok());
  EXPECT_TRUE(reloaded.Get()->IsRetired("vllm"));

  auto restored = catalog.SetRetired("vllm", false, &out);
  ASSERT_TRUE(restored.ok());
  EXPECT_TRUE(*restored);
  EXPECT_FALSE(out.retired());
  EXPECT_EQ(catalog.Get()->active, 1u);

  auto unknown = catalog.SetRetired("nope", true, &out);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("nope"));
}

TEST(CatalogTest, AStoreErrorChangesNothingThatServes) {
  FakeStore store;
  Catalog catalog(&store);
  ASSERT_TRUE(catalog.Register(Def("kept", "kept")).ok());
  auto before = catalog.Get();
  store.FailPuts(absl::UnavailableError("disk full"));
  auto registered = catalog.Register(Def("new", "new"));
  EXPECT_EQ(registered.status().code(), absl::StatusCode::kUnavailable);
  v1::Strategy out;
  auto retired = catalog.SetRetired("kept", true, &out);
  EXPECT_EQ(retired.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(catalog.Get(), before);  // not republished
  EXPECT_FALSE(catalog.Get()->IsRetired("kept"));
  EXPECT_EQ(catalog.Get()->Find("new"), nullptr);

  store.FailPuts(absl::OkStatus());  // once the store is back, the same calls go through
  EXPECT_TRUE(*catalog.Register(Def("new", "new")));
  EXPECT_TRUE(*catalog.SetRetired("kept", true, &out));
}

TEST(CatalogTest, ConcurrentRegistrationsAreAllKept) {
  FakeStore store;
  Catalog catalog(&store);
  constexpr int kThreads = 4;
  constexpr int kEach = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string id = absl::StrCat("s", t, "-", i);
        auto r = catalog.Register(Def(id, id));
        EXPECT_TRUE(r.ok() && *r) << id;
        EXPECT_NE(catalog.Get()->Find(id), nullptr);  // visible to the registering thread at once
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(catalog.Get()->protos.size(), static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(catalog.Get()->active, static_cast<size_t>(kThreads * kEach));
  EXPECT_EQ(store.strategy_puts(), static_cast<size_t>(kThreads * kEach));
}

// Cluster mode's apply (server/cluster_settings.h): the replicated entry replaces whatever is there, definition and
// flag, persisted; the same entry again writes nothing.
TEST(CatalogTest, ApplyUpsertsTheDefinitionAndFlagAsGivenAndIsIdempotent) {
  FakeStore store;
  Catalog catalog(&store);
  ASSERT_TRUE(catalog.Register(Def("vllm", "vllm")).ok());
  auto added = catalog.Apply(Def("sglang", "sglang"));
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_TRUE(*added);
  v1::Strategy replaced = Def("vllm", "vllm", "another writer's definition");
  replaced.set_retired(true);
  auto changed = catalog.Apply(replaced);
  ASSERT_TRUE(changed.ok() && *changed);
  const size_t puts = store.strategy_puts();
  auto again = catalog.Apply(replaced);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_EQ(store.strategy_puts(), puts);
  auto snap = catalog.Get();
  EXPECT_THAT(Ids(*snap), ElementsAre("sglang", "vllm"));
  EXPECT_TRUE(snap->IsRetired("vllm"));
  EXPECT_EQ(snap->active, 1u);
  EXPECT_EQ(snap->Find("vllm")->description, "another writer's definition");
  // Persisted: a reload reads the applied entries.
  Catalog reloaded(&store);
  ASSERT_TRUE(reloaded.Load().ok());
  EXPECT_TRUE(reloaded.Get()->IsRetired("vllm"));
  EXPECT_EQ(reloaded.Get()->Find("sglang")->id, "sglang");
  // A failed write leaves the catalogue as it was.
  store.FailPuts(absl::InternalError("disk full"));
  EXPECT_FALSE(catalog.Apply(Def("tgi", "tgi")).ok());
  EXPECT_EQ(catalog.Get()->Find("tgi"), nullptr);
}

}  // namespace
}  // namespace accelsel::server
