//! The adversarial suite (`shared::adversarial`) on the in-memory store, all of it: one test per
//! behaviour. The same suite runs on DynamoDB (moto) in `adapters/adversarial-aws`.

shared::adversarial_tests!(shared::adversarial::InMemoryBackend);
