{% if config_get("cloud-init.network-config", "") != "" or config_get("user.network-config", "") != "" %}yes
{% endif %}
