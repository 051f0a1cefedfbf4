output "vpc_id" {
  description = "Id of the VPC."
  value       = aws_vpc.this.id
}

output "public_subnet_ids" {
  description = "Ids of the public subnets."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Ids of the private subnets (empty without NAT)."
  value       = aws_subnet.private[*].id
}

output "task_subnet_ids" {
  description = "Subnets for the worker tasks: the private ones with NAT, else the public ones."
  value       = var.enable_nat_gateway ? aws_subnet.private[*].id : aws_subnet.public[*].id
}

output "assign_public_ip" {
  description = "Whether tasks need a public IP (true without NAT)."
  value       = !var.enable_nat_gateway
}

output "task_security_group_id" {
  description = "Security group of the worker tasks."
  value       = aws_security_group.tasks.id
}

output "nat_gateway_count" {
  description = "NAT gateways created."
  value       = length(aws_nat_gateway.this)
}

output "gateway_endpoint_ids" {
  description = "Gateway endpoint ids by service (s3, dynamodb)."
  value       = { for k, e in aws_vpc_endpoint.gateway : k => e.id }
}
