from llmpipe import secrets

ENV = {
    "HF_TOKEN": "hf_s3cr3tvalue",
    "AWS_SECRET_ACCESS_KEY": "aws-s3cr3t-key",
    "GIT_TOKEN": "1",  # too short to be told apart from data
    "MAX_TOTAL_TOKENS": "100000",  # a setting, not a token: its name is no credential's, and it is a number
    "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock",
    "POSTGRES_PASSWORD": "postgres",  # a short password is only recognised whole
    "HOME": "/root",
}


def test_a_value_that_holds_a_secret_variable_is_named_by_the_variable_never_by_its_value():
    flat = {"ingest.source": "https://u:hf_s3cr3tvalue@example.org/c", "register.api_key": "typed", "x.home": "/root"}
    problems = secrets.value_problems(flat, ENV)
    assert len(problems) == 2
    assert problems[0].startswith("ingest.source holds the value of the environment variable HF_TOKEN")
    assert problems[1].startswith("register.api_key looks like a credential")
    assert not any("s3cr3t" in p or "typed" in p for p in problems)


def test_token_counts_and_short_values_are_not_secrets():
    flat = {"pretrain.batch_tokens": 4096, "tokenize.vocab_size": 1, "clean.enabled": True, "register.api_key": ""}
    flat |= {"clean.max_bytes": 100000, "ingest.source": "postgres-dump.jsonl", "x.socket": "/tmp/ssh-agent.sock2"}
    assert secrets.value_problems(flat, ENV) == []
    assert sorted(secrets.environment_secrets(ENV)) == ["AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "POSTGRES_PASSWORD"]
    assert secrets.value_problems({"db.pass_word": "postgres"}, ENV)  # the whole value is the password


def test_every_environment_interpolation_in_config_text_is_refused():
    texts = {
        "override 'a=${oc.env:AWS_SECRET_ACCESS_KEY}'": "a=${oc.env:AWS_SECRET_ACCESS_KEY}",
        "conf/x.yaml": "root: ${oc.env:HOME,/tmp}\nn: 3\n",
        "conf/y.yaml": "n: 3\n",
    }
    problems = secrets.interpolation_problems(texts)
    assert len(problems) == 2
    assert "leave it in the environment variable AWS_SECRET_ACCESS_KEY" in problems[0]
    assert "conf/x.yaml: ${oc.env:HOME}" in problems[1] and "set the value in conf/" in problems[1]


def test_redaction_hides_what_refusal_would_refuse():
    flat = {"ingest.source": "https://u:hf_s3cr3tvalue@x", "register.api_key": "typed", "model.n_layer": 2}
    assert secrets.redact(flat, ENV) == {"ingest.source": "***", "register.api_key": "***", "model.n_layer": 2}
