"""Media in ticket conversations: uploads streamed to storage, scanned by RQ workers, served safely."""
