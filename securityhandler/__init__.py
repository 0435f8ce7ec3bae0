"""Jetty's security model as WSGI layers.

Wrap a WSGI application once::

    import securityhandler
    app.wsgi_app = securityhandler.secure(app.wsgi_app, "security.yaml")
"""

from __future__ import annotations

from .authentication import AuthenticationState as AuthenticationState
from .authentication import Authenticator as Authenticator
from .authentication import BasicAuthenticator as BasicAuthenticator
from .authentication import Failed as Failed
from .authentication import ResponseSent as ResponseSent
from .authentication import Succeeded as Succeeded
from .authentication import Unauthenticated as Unauthenticated
from .bearer import BearerAuthenticator as BearerAuthenticator
from .bearer import IapAuthenticator as IapAuthenticator
from .config import SecurityConfig as SecurityConfig
from .config import load_config as load_config
from .config import secure as secure
from .constraints import Authorization as Authorization
from .constraints import Constraint as Constraint
from .constraints import ConstraintMapping as ConstraintMapping
from .constraints import ConstraintMappings as ConstraintMappings
from .constraints import RoleInfo as RoleInfo
from .constraints import Transport as Transport
from .errors import ConfigError as ConfigError
from .errors import SecurityHandlerError as SecurityHandlerError
from .errors import SecurityWarning as SecurityWarning
from .handler import ConstraintSecurityHandler as ConstraintSecurityHandler
from .handler import Decision as Decision
from .handler import ProxyConfig as ProxyConfig
from .identity import IdentityService as IdentityService
from .identity import UserIdentity as UserIdentity
from .identity import get_identity as get_identity
from .login import LoginService as LoginService
from .realm import HashLoginService as HashLoginService
from .tokens import TokenIssuer as TokenIssuer
from .tokens import TokenLoginService as TokenLoginService

__version__ = "0.1.0"
