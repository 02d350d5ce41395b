import { dockerRuntimeLikely } from './docker.ts';

/** The Kafka broker the Kafka suite runs against, or why there is none. */
export type KafkaForTests =
  | { readonly brokers: string; readonly source: string; readonly stop: () => Promise<void> }
  | { readonly brokers: undefined; readonly skipReason: string };

/** The image of the testcontainers Kafka (KRaft, no ZooKeeper). */
const KAFKA_IMAGE = 'confluentinc/cp-kafka:7.9.0';

/**
 * A real Kafka for the Kafka suite: `KAFKA_BROKERS` (`host:port[,host:port]`) when set, else a
 * testcontainers Kafka when a Docker runtime is reachable, else none, with the reason (no Kafka broker
 * can be installed from the registries our machines reach, so on them the suite is skipped, visibly).
 */
export async function kafkaForTests(): Promise<KafkaForTests> {
  const given = process.env.KAFKA_BROKERS;
  if (given) return { brokers: given, source: 'KAFKA_BROKERS', stop: async () => {} };
  if (!dockerRuntimeLikely())
    return { brokers: undefined, skipReason: 'KAFKA_BROKERS is not set and no Docker runtime is reachable' };
  try {
    const { KafkaContainer } = await import('@testcontainers/kafka');
    const container = await new KafkaContainer(KAFKA_IMAGE).withKraft().start();
    return {
      brokers: `${container.getHost()}:${container.getMappedPort(9093)}`,
      source: `testcontainers ${KAFKA_IMAGE}`,
      stop: async () => {
        await container.stop();
      },
    };
  } catch (error) {
    return {
      brokers: undefined,
      skipReason: `KAFKA_BROKERS is not set and a testcontainers Kafka did not start (${error instanceof Error ? error.message : String(error)})`,
    };
  }
}
