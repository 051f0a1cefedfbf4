# Dashboard and alarms, with a mock provider.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
}

variables {
  name_prefix           = "bottlesync-test"
  alarm_topic_arn       = "arn:aws:sns:us-east-1:123456789012:bottlesync-test-alarms"
  lambda_queue_name     = "bottlesync-test-work"
  ecs_queue_name        = "bottlesync-test-work-large"
  dlq_name              = "bottlesync-test-dlq"
  schedule_dlq_name     = "bottlesync-test-schedule-dlq"
  planner_function_name = "bottlesync-test-planner"
  worker_function_name  = "bottlesync-test-worker"
  ecs_cluster_name      = "bottlesync-test"
  ecs_cluster_arn       = "arn:aws:ecs:us-east-1:123456789012:cluster/bottlesync-test"
  ecs_service_name      = "bottlesync-test-worker"
  environment           = "test"
}

run "dashboard_widgets" {
  command = plan

  assert {
    condition = alltrue([for t in [
      "Queue bottlesync-test-work", "Queue bottlesync-test-work-large", "Queue bottlesync-test-dlq",
      "Messages sent / deleted", "ECS worker tasks", "Lambda errors and throttles", "Lambda duration (ms)",
      "Bottles (EMF)", "Bytes (EMF)", "Download and queue time (EMF, seconds)",
    ] : contains(output.dashboard_widget_titles, t)])
    error_message = "queue depth for both queues and the DLQ, sent/deleted, ECS tasks, Lambda errors/throttles/duration, EMF metrics"
  }
  assert {
    condition = alltrue([for m in ["ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible", "ApproximateAgeOfOldestMessage"] :
      strcontains(aws_cloudwatch_dashboard.this.dashboard_body, m)
    ])
    error_message = "visible, in flight and age of oldest on the dashboard"
  }
  assert {
    condition = alltrue([for m in ["BottlesStored", "BottlesFailed", "BytesStored", "BottlesPlanned"] :
      contains(flatten([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets : try(flatten(w.properties.metrics), [])]), m)
    ]) && strcontains(aws_cloudwatch_dashboard.this.dashboard_body, "[\"bottlesync\",\"BottlesPlanned\",\"Environment\",\"test\"")
    error_message = "the fleet's EMF metrics (core::metrics), namespace bottlesync, dimension Environment"
  }
}

run "every_metric_line_is_a_list" {
  command = plan

  assert {
    # CloudWatch wants metrics = [[namespace, name, dims..., {options}], ...].
    condition = alltrue(flatten([for w in jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets :
      [for m in try(w.properties.metrics, []) : can(m[0])]
    ]))
    error_message = "a widget's metrics must be a list of lists"
  }
}

run "alarms_go_to_the_topic" {
  command = plan

  assert {
    condition = (
      aws_cloudwatch_metric_alarm.dlq_depth["work"].dimensions.QueueName == "bottlesync-test-dlq" &&
      aws_cloudwatch_metric_alarm.dlq_depth["work"].threshold == 0 &&
      aws_cloudwatch_metric_alarm.dlq_depth["work"].comparison_operator == "GreaterThanThreshold"
    )
    error_message = "DLQ depth > 0"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.oldest_message["ecs"].metric_name == "ApproximateAgeOfOldestMessage" && aws_cloudwatch_metric_alarm.oldest_message["ecs"].threshold == 21600
    error_message = "age of the oldest message"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.lambda_errors["planner"].dimensions.FunctionName == "bottlesync-test-planner"
    error_message = "planner failures"
  }
  assert {
    condition = alltrue([for a in concat(values(aws_cloudwatch_metric_alarm.dlq_depth), values(aws_cloudwatch_metric_alarm.dlq_new_letters), values(aws_cloudwatch_metric_alarm.oldest_message), values(aws_cloudwatch_metric_alarm.lambda_errors)) :
      a.alarm_actions == toset([var.alarm_topic_arn])
    ])
    error_message = "every alarm notifies the topic"
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.ecs_task_failed.event_pattern).detail.clusterArn == [var.ecs_cluster_arn]
    error_message = "ECS task failures of this cluster"
  }
  assert {
    condition     = aws_cloudwatch_event_target.ecs_task_failed.arn == var.alarm_topic_arn
    error_message = "ECS task failures go to the topic"
  }
  assert {
    condition = alltrue([for key, queue in { work = "bottlesync-test-dlq", schedule = var.schedule_dlq_name } :
      aws_cloudwatch_metric_alarm.dlq_new_letters[key].metric_name == "NumberOfMessagesSent" &&
      aws_cloudwatch_metric_alarm.dlq_new_letters[key].dimensions.QueueName == queue &&
      aws_cloudwatch_metric_alarm.dlq_new_letters[key].statistic == "Sum" &&
      aws_cloudwatch_metric_alarm.dlq_new_letters[key].threshold == 0
    ])
    error_message = "new dead letters alarm even while the depth alarm is already in ALARM"
  }
  assert {
    condition = (
      jsondecode(aws_cloudwatch_event_rule.ecs_placement_failed.event_pattern).detail.eventName == ["SERVICE_TASK_PLACEMENT_FAILURE"] &&
      jsondecode(aws_cloudwatch_event_rule.ecs_placement_failed.event_pattern).detail.clusterArn == [var.ecs_cluster_arn] &&
      jsondecode(aws_cloudwatch_event_rule.ecs_placement_failed.event_pattern)["detail-type"] == ["ECS Service Action"] &&
      aws_cloudwatch_event_target.ecs_placement_failed.arn == var.alarm_topic_arn
    )
    error_message = "a service that cannot place tasks notifies the topic"
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.summary_rejected.namespace == var.metrics_namespace &&
      aws_cloudwatch_metric_alarm.summary_rejected.metric_name == "SummaryRejected" &&
      aws_cloudwatch_metric_alarm.summary_rejected.dimensions.Environment == var.environment &&
      aws_cloudwatch_metric_alarm.summary_rejected.alarm_actions == toset([var.alarm_topic_arn])
    )
    error_message = "a summary Slack refused for good notifies the topic (the metric core/src/run/finish.rs emits)"
  }
}
