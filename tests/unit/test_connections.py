import pytest

from dagspec.connections import ConnectionNotFound, env_resolver, parse_connection, sqlalchemy_url


def test_uri_in_airflow_format():
    info = parse_connection("src", "postgresql://etl:s%40cret@db.example:5433/shop?sslmode=require")
    assert (info.conn_type, info.host, info.port, info.login, info.password, info.schema) == (
        "postgres", "db.example", 5433, "etl", "s@cret", "shop")
    url = sqlalchemy_url(info)
    assert url.drivername == "postgresql+psycopg" and url.query == {"sslmode": "require"}
    assert "s@cret" not in repr(info) and "s@cret" not in str(url)


def test_json_format_and_sqlite_path():
    info = parse_connection("x", '{"conn_type": "mysql", "host": "h", "port": 3306, "login": "u", "password": "p"}')
    assert sqlalchemy_url(info).drivername == "mysql+pymysql"
    assert parse_connection("f", "sqlite:////tmp/a.db").host == "/tmp/a.db"


def test_scrub_removes_the_password_from_messages():
    info = parse_connection("src", "postgres://u:hunter2@h/db")
    assert info.scrub("could not connect with hunter2") == "could not connect with ***"


def test_env_and_embedded_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("DAGSPEC_HOME", str(tmp_path))
    assert env_resolver("dagspec_source").host == str(tmp_path / "source.db")
    monkeypatch.setenv("AIRFLOW_CONN_DAGSPEC_SOURCE", "sqlite:////elsewhere.db")
    assert env_resolver("dagspec_source").host == "/elsewhere.db"
    with pytest.raises(ConnectionNotFound, match="AIRFLOW_CONN_NOPE"):
        env_resolver("nope")


def test_unknown_conn_type_says_what_to_do():
    with pytest.raises(ValueError, match="sqlalchemy_url"):
        sqlalchemy_url(parse_connection("x", "ftp://h/"))
