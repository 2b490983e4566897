"""Form fields shared by the watcher admin and the watcher pages."""

from typing import Any

from django import forms

from watchers.choices import Health, Mode
from watchers.services.durations import (
    DAILY,
    DurationError,
    check_duration_limit,
    format_duration,
    parse_duration,
)


class DurationSecondsField(forms.Field):
    """A duration written as operators write it (``90s``, ``10m``, ``1h30m``).

    A plain whole number is read as seconds, so values written before the
    field took units still validate. The cleaned value is whole seconds, or
    None when the field is empty and not required. ``zero_word`` names a
    word that means 0, such as ``immediate`` for an escalation delay.
    """

    def __init__(self, *, zero_word: str = "", **kwargs: Any) -> None:
        self.zero_word = zero_word
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 10}))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value == 0 and self.zero_word:
                return self.zero_word
            return format_duration(value)
        return value

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        text = str(value).strip()
        if self.zero_word and text.lower() == self.zero_word:
            return 0
        if text.lower() == DAILY:
            raise forms.ValidationError(
                "'daily' is a schedule, not a duration: for a check once a day, "
                "set the window to 0s and the interval to 1d",
                code="invalid_duration",
            )
        try:
            if text.isdigit():
                return check_duration_limit(int(text), text)
            return parse_duration(text)
        except DurationError as error:
            raise forms.ValidationError(str(error), code="invalid_duration") from None

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != initial
        except forms.ValidationError:
            return True


class WatcherFilterForm(forms.Form):
    """Filters of the watchers page; every field is optional and they combine."""

    q = forms.CharField(required=False, max_length=200, label="Name or query")
    group = forms.CharField(required=False, max_length=100, label="Group")
    mode = forms.ChoiceField(
        required=False, choices=[("", "any"), *Mode.choices], label="Mode"
    )
    health = forms.ChoiceField(
        required=False, choices=[("", "any"), *Health.choices], label="State"
    )

    def filters(self) -> dict[str, str]:
        """Return the valid filters as keyword arguments of listed_watchers."""
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {
            "group": data["group"],
            "mode": data["mode"],
            "health": data["health"],
            "text": data["q"],
        }


class WatcherModeForm(forms.Form):
    mode = forms.ChoiceField(choices=Mode.choices)
