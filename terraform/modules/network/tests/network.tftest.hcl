# The network module's own logic, with a mock provider.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["us-east-1a", "us-east-1b", "us-east-1c"] }
  }
}

variables {
  name_prefix = "bottlesync-test"
}

run "default_is_public_subnets_without_nat" {
  command = plan

  assert {
    condition     = length(aws_nat_gateway.this) == 0 && length(aws_subnet.private) == 0 && length(aws_eip.nat) == 0
    error_message = "no NAT gateway, no private subnets by default"
  }
  assert {
    condition     = length(aws_subnet.public) == 2 && [for s in aws_subnet.public : s.availability_zone] == ["us-east-1a", "us-east-1b"]
    error_message = "one public subnet in each of the first az_count zones"
  }
  assert {
    condition     = output.assign_public_ip == true
    error_message = "tasks need public IPs without NAT"
  }
  assert {
    condition     = alltrue([for s in aws_subnet.public : !s.map_public_ip_on_launch])
    error_message = "subnets do not hand out public IPs themselves"
  }
  assert {
    condition     = toset(keys(aws_vpc_endpoint.gateway)) == toset(["s3", "dynamodb"]) && aws_vpc_endpoint.gateway["s3"].service_name == "com.amazonaws.us-east-1.s3"
    error_message = "gateway endpoints for S3 and DynamoDB"
  }
  assert {
    condition     = alltrue([for e in aws_vpc_endpoint.gateway : e.vpc_endpoint_type == "Gateway"])
    error_message = "gateway (free) endpoints, not interface endpoints"
  }
}

run "egress_only_security_group" {
  command = plan

  assert {
    condition     = [for r in aws_vpc_security_group_egress_rule.tasks : "${r.ip_protocol}/${r.from_port}-${r.to_port}"] == ["tcp/443-443"]
    error_message = "HTTPS out only (and no ingress rule resources exist in this module)"
  }
  assert {
    condition     = length(aws_default_security_group.this.ingress) == 0 && length(aws_default_security_group.this.egress) == 0
    error_message = "the VPC's default security group has no rules"
  }
}

run "private_subnets_with_one_nat_gateway" {
  command = plan

  variables {
    enable_nat_gateway = true
    az_count           = 3
  }

  assert {
    condition     = length(aws_subnet.private) == 3 && length(aws_nat_gateway.this) == 1 && length(aws_route.private_nat) == 3
    error_message = "three private subnets behind one NAT gateway"
  }
  assert {
    condition     = output.assign_public_ip == false
    error_message = "no public IPs behind NAT"
  }
}

run "one_nat_gateway_per_zone" {
  command = plan

  variables {
    enable_nat_gateway = true
    single_nat_gateway = false
    availability_zones = ["eu-west-1a", "eu-west-1b"]
  }

  assert {
    condition     = length(aws_nat_gateway.this) == 2 && [for s in aws_subnet.private : s.availability_zone] == ["eu-west-1a", "eu-west-1b"]
    error_message = "a NAT gateway per zone, in the given zones"
  }
  assert {
    condition     = length(data.aws_availability_zones.available) == 0
    error_message = "given zones are not looked up"
  }
}

run "rejects_small_vpc" {
  command = plan
  variables {
    vpc_cidr = "10.0.0.0/28"
  }
  expect_failures = [var.vpc_cidr]
}

# terraform-aws-modules users expect `tags` on every resource that takes them.
run "tags_reach_the_resources" {
  command = plan
  variables {
    tags = { CostCenter = "platform" }
  }
  assert {
    condition     = aws_vpc.this.tags["CostCenter"] == "platform" && aws_vpc.this.tags["Name"] == var.name_prefix
    error_message = "the module's resources carry var.tags"
  }
}
