"""The admin dashboard's figures: backlog, flow, response times, load, queue and rules at a glance."""
