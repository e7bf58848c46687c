# The event stream: document.submitted and chunk.ready records (pointers only, never document text).

resource "aws_kinesis_stream" "events" {
  name             = "${local.prefix}-events"
  shard_count      = var.shard_count
  retention_period = var.stream_retention_hours

  # Provisioned: the worker fleet is sized to the shard count (one lease per shard).
  stream_mode_details {
    stream_mode = "PROVISIONED"
  }

  encryption_type = "KMS"
  kms_key_id      = aws_kms_key.data.arn

  # Per-shard metrics, to see one hot or stuck shard behind the stream-wide maximum.
  shard_level_metrics = [
    "IncomingRecords",
    "IteratorAgeMilliseconds",
    "ReadProvisionedThroughputExceeded",
    "WriteProvisionedThroughputExceeded",
  ]
}
