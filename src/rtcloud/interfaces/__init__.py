"""The user-facing interfaces with RT-Cloud names: data, subject, web display, client."""
